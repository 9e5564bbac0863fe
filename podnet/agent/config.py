"""The agent's configuration: flags (kube-proxy / flannel style), each also readable from a
YAML file (`--config FILE`, keys spelled as the flags without dashes: `node-name: a`).
A flag given on the command line wins over the file. One pure function turns both into a
frozen, validated AgentConfig; no other part reads raw flags.
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import socket
from dataclasses import dataclass
from typing import Any

import yaml

from ipam.errors import IPAMError
from ipam.store_url import default_url, parse_store_url
from ipam.subnets import parse_cluster_ranges
from proxy.daemon import parse_duration

BACKENDS = ("host-gw", "vxlan")
PROXY_MODES = ("iptables", "nftables", "none")
OBJECTS = "etcd, dir:DIR or kubernetes"

# flag -> (repeatable, default). The deploy files' test checks them against this table.
FLAGS: dict[str, tuple[bool, Any]] = {
    "node-name": (False, None),  # default: the host name
    "node-ip": (True, ()),  # default: the addresses of the default route's interface
    "store": (False, None),  # default: $PODNET_STORE, else file:/var/lib/podnet/ipam
    "cluster-cidr": (True, ("10.244.0.0/16",)),
    "node-mask-size": (True, ()),  # default: /24 for IPv4, /64 for IPv6
    "service-cidr": (True, ("10.96.0.0/12",)),
    "backend": (False, "vxlan"),
    "proxy-mode": (False, "iptables"),
    "objects": (False, "etcd"),
    "kubeconfig": (False, None),
    "cni-bin-dir": (False, "/opt/cni/bin"),
    "cni-conf-dir": (False, "/etc/cni/net.d"),
    "cni-data-dir": (False, "/var/lib/podnet/networks"),
    "lease-ttl": (False, 30),
    "min-sync-period": (False, "1s"),  # kube-proxy's --iptables-min-sync-period
    "metrics-bind-address": (False, "127.0.0.1:10249"),
    "healthz-bind-address": (False, "0.0.0.0:10256"),
    "network-policy": (False, True),  # enforce NetworkPolicy (policy/, podnet-policy table)
}
DEFAULT_MASK = {4: 24, 6: 64}


class ConfigError(ValueError):
    """A flag or config-file key with a bad value; the message names it."""


@dataclass(frozen=True)
class AgentConfig:
    node_name: str
    node_ips: tuple[str, ...]
    store: str
    cluster_cidrs: tuple[str, ...]
    node_mask_sizes: tuple[int, ...]
    service_cidrs: tuple[str, ...]
    backend: str
    proxy_mode: str
    objects: str  # "etcd", "kubernetes" or "dir:/path"
    kubeconfig: str | None
    cni_bin_dir: str
    cni_conf_dir: str
    cni_data_dir: str
    lease_ttl: int
    min_sync_period: float  # seconds between two syncs of the Service rules, at least
    metrics_bind_address: str
    healthz_bind_address: str
    network_policy: bool = True

    def node_ip(self, family: int) -> str | None:
        return next((ip for ip in self.node_ips if ipaddress.ip_address(ip).version == family), None)


def read_file(path: str) -> dict[str, Any]:
    try:
        with open(path, encoding="utf-8") as f:
            data = yaml.safe_load(f) or {}
    except OSError as e:
        raise ConfigError(f"--config {path}: {e.strerror}") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"--config {path}: not YAML ({e})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"--config {path}: not a mapping of flag names to values")
    unknown = sorted(set(data) - set(FLAGS))
    if unknown:
        raise ConfigError(f"--config {path}: unknown key {unknown[0]!r} (keys are the flag names: {', '.join(FLAGS)})")
    return data


def build(flags: dict[str, Any], file_values: dict[str, Any] | None = None) -> AgentConfig:
    """Flags (None or empty = not given) over the file's values over the defaults."""
    raw: dict[str, Any] = {}
    for name, (repeatable, default) in FLAGS.items():
        given = flags.get(name)
        if given in (None, ()) and file_values and name in file_values:
            given = file_values[name]
        if given in (None, ()):
            given = default
        if repeatable and not isinstance(given, list | tuple):
            given = [given]
        raw[name] = tuple(given) if repeatable else given
    return _validate(raw)


def _validate(raw: dict[str, Any]) -> AgentConfig:
    node = raw["node-name"] or socket.gethostname().lower()
    if not isinstance(node, str) or not node or len(node) > 253 or any(c in node for c in "/ \n"):
        raise ConfigError(f"--node-name: {node!r} is not a node name")
    ips = tuple(_ip(ip, "--node-ip") for ip in raw["node-ip"])
    if len({ipaddress.ip_address(ip).version for ip in ips}) != len(ips):
        raise ConfigError("--node-ip: give at most one address per IP family")
    store = raw["store"] or default_url()
    try:
        parse_store_url(store, "--store")
    except IPAMError as e:
        raise ConfigError(str(e)) from None
    cidrs = raw["cluster-cidr"]
    masks = raw["node-mask-size"] or tuple(DEFAULT_MASK[_net(c, "--cluster-cidr").version] for c in cidrs)
    if len(masks) == 1 and len(cidrs) > 1:
        masks = masks * len(cidrs)
    try:
        masks = tuple(int(m) for m in masks)
        parse_cluster_ranges(list(cidrs), list(masks))
    except (TypeError, ValueError) as e:
        raise ConfigError(f"--node-mask-size: {e}") from None
    except IPAMError as e:
        raise ConfigError(f"--{e}") from None
    services = tuple(str(_net(c, "--service-cidr")) for c in raw["service-cidr"])
    for name, allowed in (("backend", BACKENDS), ("proxy-mode", PROXY_MODES)):
        if raw[name] not in allowed:
            raise ConfigError(f"--{name}: {raw[name]!r} is not one of {', '.join(allowed)}")
    objects = raw["objects"]
    if objects not in ("etcd", "kubernetes") and not (isinstance(objects, str) and objects.startswith("dir:/")):
        raise ConfigError(f"--objects: {objects!r} is not {OBJECTS} (dir: needs an absolute path)")
    if objects == "etcd" and not parse_store_url(store).is_etcd:
        raise ConfigError(f"--objects etcd needs an etcd --store (etcd://HOST:PORT/PREFIX), not {store!r}")
    ttl = raw["lease-ttl"]
    if isinstance(ttl, bool) or not isinstance(ttl, int) or ttl < 3:
        try:
            ttl = int(str(ttl).removesuffix("s"))
        except ValueError:
            ttl = 0
        if ttl < 3:
            raise ConfigError(f"--lease-ttl: {raw['lease-ttl']!r} is not a number of seconds (at least 3)")
    try:
        min_sync = parse_duration(str(raw["min-sync-period"]))
    except (ValueError, argparse.ArgumentTypeError):  # parse_duration speaks argparse's language
        min_sync = -1.0
    if not 0 <= min_sync <= 60:
        raise ConfigError(f"--min-sync-period: {raw['min-sync-period']!r} is not a duration from 0s to 60s")
    for name in ("cni-bin-dir", "cni-conf-dir", "cni-data-dir"):
        if not isinstance(raw[name], str) or not os.path.isabs(raw[name]):
            raise ConfigError(f"--{name}: {raw[name]!r} is not an absolute path")
    if not isinstance(raw["network-policy"], bool):
        raise ConfigError(f"--network-policy: {raw['network-policy']!r} is not true or false")
    return AgentConfig(
        node_name=node,
        node_ips=ips,
        store=store,
        cluster_cidrs=tuple(str(_net(c, "--cluster-cidr")) for c in cidrs),
        node_mask_sizes=masks,
        service_cidrs=services,
        backend=raw["backend"],
        proxy_mode=raw["proxy-mode"],
        objects=objects,
        kubeconfig=raw["kubeconfig"],
        cni_bin_dir=raw["cni-bin-dir"],
        cni_conf_dir=raw["cni-conf-dir"],
        cni_data_dir=raw["cni-data-dir"],
        lease_ttl=ttl,
        min_sync_period=min_sync,
        metrics_bind_address=raw["metrics-bind-address"] or "",
        healthz_bind_address=raw["healthz-bind-address"] or "",
        network_policy=raw["network-policy"],
    )


def _ip(text: Any, flag: str) -> str:
    try:
        return str(ipaddress.ip_address(str(text)))
    except ValueError:
        raise ConfigError(f"{flag}: {text!r} is not an IP address") from None


def _net(text: Any, flag: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    try:
        return ipaddress.ip_network(str(text))
    except ValueError as e:
        raise ConfigError(f"{flag}: {text!r} is not a CIDR ({e})") from None
