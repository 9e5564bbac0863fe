"""`podnet-proxy`: the per-node service proxy daemon, with kube-proxy's flag names.

    ip netns exec NODE podnet-proxy --objects-dir DIR --hostname-override NODE \\
        --node-ip 192.168.1.1 --cluster-cidr 10.244.0.0/16

Rules go into the network namespace the process runs in. `--once` programs the objects as
they are now and exits (0 when programmed); `--cleanup` removes everything podnet-proxy made.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import logging
import os
import re
import signal
import sys
import threading
import time
from dataclasses import dataclass
from typing import Any

from podnet import logs
from proxy import addresses
from proxy.backend import ApplyError, Backend, UnsupportedMode, backend_for, cleanup_all
from proxy.health import Health, HealthCheckNodePorts, parse_bind, serve
from proxy.metaproxier import FanOut, MetaProxier
from proxy.metrics import CONTENT_TYPE, Metrics
from proxy.model import NodeContext
from proxy.proxier import Proxier
from proxy.runner import Runner
from proxy.source import DirectorySource
from proxy.trackers import Trackers

log = logging.getLogger("podnet.proxy")

_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h)")


def parse_duration(text: str) -> float:
    """A Go duration ("1s", "500ms", "1m30s") in seconds."""
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}
    text = text.strip()
    if text in ("0", ""):
        return 0.0
    parts = _DURATION.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise argparse.ArgumentTypeError(f"invalid duration {text!r} (e.g. 1s, 500ms, 1m30s)")
    return sum(float(n) * units[u] for n, u in parts)


def parse_bool(text: str) -> bool:
    low = text.lower()
    if low in ("true", "1", "t", "yes"):
        return True
    if low in ("false", "0", "f", "no"):
        return False
    raise argparse.ArgumentTypeError(f"invalid boolean {text!r} (true or false)")


def parse_cidrs(text: str) -> list[str]:
    out = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        if part == "primary":
            out.append(part)
            continue
        try:
            out.append(str(ipaddress.ip_network(part, strict=False)))
        except ValueError:
            raise argparse.ArgumentTypeError(f"invalid CIDR {part!r}") from None
    return out


def parse_scheduler(text: str) -> str:
    from proxy.ipvs.desired import InvalidScheduler, check_scheduler

    try:
        return check_scheduler(text)
    except InvalidScheduler as e:
        raise argparse.ArgumentTypeError(str(e).removeprefix("--ipvs-scheduler: ")) from None


def parse_ip(text: str) -> str:
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid IP address {text!r}") from None


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="podnet-proxy", description=__doc__.split("\n\n")[0])
    flag: dict[str, Any] = {"nargs": "?", "const": True, "type": parse_bool}
    p.add_argument("--proxy-mode", default="iptables", help="iptables, nftables or ipvs")
    p.add_argument("--ipvs-scheduler", type=parse_scheduler, default="rr", help="rr, lc or sh (ipvs mode)")
    p.add_argument("--objects-dir", help="directory of Service/EndpointSlice/Node/ServiceCIDR YAML or JSON")
    p.add_argument("--hostname-override", default=None, help="this node's name (which endpoints are local)")
    p.add_argument("--cluster-cidr", type=parse_cidrs, default=[], help="pod CIDR(s): traffic from elsewhere is SNATed")
    p.add_argument("--nodeport-addresses", type=parse_cidrs, default=[], help="CIDRs or 'primary' (default: all)")
    p.add_argument("--masquerade-all", default=False, **flag, help="SNAT all traffic to Service IPs")
    p.add_argument("--iptables-min-sync-period", type=parse_duration, default=1.0, help="default 1s")
    p.add_argument("--iptables-sync-period", type=parse_duration, default=30.0, help="default 30s")
    p.add_argument("--iptables-localhost-nodeports", default=True, **flag, help="allow 127.0.0.1:nodePort")
    p.add_argument("--metrics-bind-address", default="127.0.0.1:10249", help="'' disables")
    p.add_argument("--healthz-bind-address", default="0.0.0.0:10256", help="'' disables")
    p.add_argument("--cleanup", default=False, **flag, help="remove all podnet-proxy rules and exit")
    p.add_argument("--node-ip", action="append", type=parse_ip, default=[],
                   help="this node's IP (repeatable; one of each family: dual stack)")  # fmt: skip
    p.add_argument(
        "--service-cidr",
        type=parse_cidrs,
        default=[],
        help="service CIDR(s) besides ServiceCIDR objects (nftables: unallocated addresses drop)",
    )
    p.add_argument("--once", action="store_true", help="program the rules once and exit")
    p.add_argument("--iptables-flavor", choices=("auto", "nft", "legacy"), default="auto",
                   help="iptables backend (default: whatever `iptables` is on this machine)")  # fmt: skip
    p.add_argument("-v", "--v", dest="verbosity", type=int, default=2, help="log verbosity (0-4)")
    p.add_argument("--logging-format", choices=logs.LOG_FORMATS, default="text", help="text (default) or json")
    p.add_argument("--version", action="version", version=f"podnet-proxy {_version()}")
    return p


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("podnet")
    except PackageNotFoundError:  # run from a checkout that was never installed
        return "unknown"


def node_contexts(args) -> list[NodeContext]:
    """One context per IP family the node has (dual stack: kube-proxy's metaproxier runs a
    proxier per family), the family of the first node IP first."""
    node_ips = tuple(args.node_ip) or (addresses.default_node_ips(4) + addresses.default_node_ips(6))
    families = list(dict.fromkeys(ipaddress.ip_address(ip).version for ip in node_ips)) or [4]
    return [node_context(args, family, node_ips) for family in families]


def node_context(args, family: int = 4, node_ips: tuple[str, ...] | None = None) -> NodeContext:
    node_ips = tuple(args.node_ip) if node_ips is None else node_ips
    node_ips = node_ips or addresses.default_node_ips(family)
    mine = tuple(ip for ip in node_ips if ipaddress.ip_address(ip).version == family)
    host = "/32" if family == 4 else "/128"
    cidrs: list[str] = []
    for c in args.nodeport_addresses:
        cidrs += [f"{ip}{host}" for ip in mine] if c == "primary" else [c]

    def of_family(nets) -> tuple[str, ...]:
        return tuple(c for c in nets if c != "primary" and ipaddress.ip_network(c).version == family)

    return NodeContext(
        name=args.hostname_override or _hostname(),
        node_ips=mine,
        cluster_cidrs=of_family(args.cluster_cidr),
        masquerade_all=args.masquerade_all,
        nodeport_addresses=of_family(cidrs),
        localhost_nodeports=args.iptables_localhost_nodeports,
        local_addresses=addresses.local_addresses(family),
        service_cidrs=of_family(getattr(args, "service_cidr", [])),
        family=family,
    )


def _hostname() -> str:
    import socket

    return socket.gethostname().lower()


@dataclass
class Daemon:
    args: argparse.Namespace
    nodes: list[NodeContext]  # one per family
    backends: list[Backend]

    def __post_init__(self) -> None:
        self.metrics = Metrics()
        family_trackers = [Trackers(n.name) for n in self.nodes]
        self.trackers = FanOut(family_trackers)
        self.source = DirectorySource(self.args.objects_dir)
        families = zip(self.nodes, self.backends, family_trackers, strict=True)
        self.proxier = MetaProxier([Proxier(n, b, t, self.metrics) for n, b, t in families], self.metrics)
        self.health = Health(timeout=2 * self.args.iptables_sync_period + self.args.iptables_min_sync_period)
        self.hc_ports = HealthCheckNodePorts()
        self.stop = threading.Event()

    def once(self) -> int:
        self.source.scan(self.trackers)
        self.metrics.set("podnet_proxy_invalid_objects", len(self.source.errors))
        try:
            result = self.proxier.sync()
        except ApplyError as e:
            print(f"podnet-proxy: rules not programmed: {e}", file=sys.stderr)
            return 1
        log.info("programmed %d service ports (%s)", self.proxier.port_count, "applied" if result.applied else "")
        return 0

    def sync(self) -> None:
        try:
            self.proxier.sync()
        finally:
            ports = self.proxier.health_check_ports()
            self.hc_ports.update({hc: (p.name.namespace, p.name.name, n) for hc, (p, n) in ports.items()})

    def run(self) -> int:
        servers = []
        if self.args.metrics_bind_address:
            servers.append(serve(parse_bind(self.args.metrics_bind_address, 10249), self._metrics_page))
        if self.args.healthz_bind_address:
            servers.append(serve(parse_bind(self.args.healthz_bind_address, 10256), self._healthz_page))
        runner = Runner(
            self.sync,
            min_interval=self.args.iptables_min_sync_period,
            max_interval=self.args.iptables_sync_period,
            retry_interval=max(self.args.iptables_min_sync_period, 0.5),
        )
        poll = min(1.0, max(0.1, self.args.iptables_min_sync_period / 2))
        self.source.scan(self.trackers)  # the first complete view, before the first sync
        runner.start()
        try:
            while not self.stop.is_set():
                changed = self.source.scan(self.trackers)
                self.metrics.set("podnet_proxy_invalid_objects", len(self.source.errors))
                if changed or self.trackers.pending():
                    self.proxier.queued()
                    runner.request()
                self.stop.wait(poll)
        finally:
            runner.stop()
            self.hc_ports.close()
            for s in servers:
                s.shutdown()
        return 0

    def _healthz_page(self, path: str) -> tuple[int, str, str]:
        if path.split("?")[0] not in ("/healthz", "/livez", "/"):
            return 404, "text/plain", "not found\n"
        now = time.time()
        ok = self.health.check(self.proxier.last_success, self.proxier.last_queued, now)
        last = self.proxier.last_success or 0
        body = {
            "lastUpdated": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(last)),
            "currentTime": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now)),
            "nodeEligible": True,
            "consecutiveFailures": self.metrics.total("kubeproxy_sync_proxy_rules_iptables_restore_failures_total"),
        }
        return (200 if ok else 503), "application/json", json.dumps(body)

    def _metrics_page(self, path: str) -> tuple[int, str, str]:
        if path.split("?")[0] != "/metrics":
            return 404, "text/plain", "not found\n"
        return 200, CONTENT_TYPE, self.metrics.text()


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    level = {0: logging.ERROR, 1: logging.WARNING, 2: logging.INFO}.get(args.verbosity, logging.DEBUG)
    logs.setup("podnet-proxy", args.logging_format, level)
    try:
        nodes = node_contexts(args)
        options = {  # each mode's own options
            "iptables": {"flavor": None if args.iptables_flavor == "auto" else args.iptables_flavor},
            "ipvs": {"scheduler": args.ipvs_scheduler},
        }
        backends = [backend_for(args.proxy_mode, n, **options.get(args.proxy_mode, {})) for n in nodes]
    except UnsupportedMode as e:
        print(f"podnet-proxy: {e}", file=sys.stderr)
        return 2
    if args.cleanup:
        removed = cleanup_all(nodes[0], options)
        log.info("cleanup removed %d rules and chains", len(removed))
        return 0
    if not args.objects_dir:
        print("podnet-proxy: --objects-dir is required", file=sys.stderr)
        return 2
    if not os.path.isdir(args.objects_dir):
        print(f"podnet-proxy: --objects-dir {args.objects_dir}: not a directory", file=sys.stderr)
        return 2
    daemon = Daemon(args, nodes, backends)
    if args.once:
        return daemon.once()
    signal.signal(signal.SIGTERM, lambda *_: daemon.stop.set())
    signal.signal(signal.SIGINT, lambda *_: daemon.stop.set())
    return daemon.run()


if __name__ == "__main__":
    sys.exit(main())
