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
    p.add_argument("--node-ip", action="append", type=parse_ip, default=[], help="this node's IP (repeatable)")
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


def node_context(args) -> NodeContext:
    node_ips = tuple(args.node_ip) or addresses.default_node_ips()
    cidrs: list[str] = []
    for c in args.nodeport_addresses:
        cidrs += [f"{ip}/32" for ip in node_ips if ipaddress.ip_address(ip).version == 4] if c == "primary" else [c]
    return NodeContext(
        name=args.hostname_override or _hostname(),
        node_ips=tuple(ip for ip in node_ips if ipaddress.ip_address(ip).version == 4),
        cluster_cidrs=tuple(c for c in args.cluster_cidr if c != "primary" and ipaddress.ip_network(c).version == 4),
        masquerade_all=args.masquerade_all,
        nodeport_addresses=tuple(c for c in cidrs if ipaddress.ip_network(c).version == 4),
        localhost_nodeports=args.iptables_localhost_nodeports,
        local_addresses=addresses.local_addresses(4),
    )


def _hostname() -> str:
    import socket

    return socket.gethostname().lower()


@dataclass
class Daemon:
    args: argparse.Namespace
    node: NodeContext
    backend: Backend

    def __post_init__(self) -> None:
        self.metrics = Metrics()
        self.trackers = Trackers(self.node.name)
        self.source = DirectorySource(self.args.objects_dir)
        self.proxier = Proxier(self.node, self.backend, self.trackers, self.metrics)
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
        log.info("programmed %d service ports (%s)", len(self.proxier.model.ports), "applied" if result.applied else "")
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
            "consecutiveFailures": self.proxier.metrics.get(
                "kubeproxy_sync_proxy_rules_iptables_restore_failures_total"
            ),
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
        node = node_context(args)
        options = {  # each mode's own options
            "iptables": {"flavor": None if args.iptables_flavor == "auto" else args.iptables_flavor},
            "ipvs": {"scheduler": args.ipvs_scheduler},
        }
        backend = backend_for(args.proxy_mode, node, **options.get(args.proxy_mode, {}))
    except UnsupportedMode as e:
        print(f"podnet-proxy: {e}", file=sys.stderr)
        return 2
    if args.cleanup:
        removed = cleanup_all(node, options)
        log.info("cleanup removed %d rules and chains", len(removed))
        return 0
    if not args.objects_dir:
        print("podnet-proxy: --objects-dir is required", file=sys.stderr)
        return 2
    if not os.path.isdir(args.objects_dir):
        print(f"podnet-proxy: --objects-dir {args.objects_dir}: not a directory", file=sys.stderr)
        return 2
    daemon = Daemon(args, node, backend)
    if args.once:
        return daemon.once()
    signal.signal(signal.SIGTERM, lambda *_: daemon.stop.set())
    signal.signal(signal.SIGINT, lambda *_: daemon.stop.set())
    return daemon.run()


if __name__ == "__main__":
    sys.exit(main())
