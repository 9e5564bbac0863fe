"""UDP conntrack clean-up (kube-proxy's pkg/proxy/conntrack): UDP has no connection to close,
so a client keeps sending to an endpoint that is gone for as long as its conntrack entry lives.
Deleting the entries that were NATed to removed endpoints moves such clients at once.
"""

from __future__ import annotations

import logging
import subprocess
from dataclasses import dataclass

from proxy.model import ServicePortModel

log = logging.getLogger("podnet.proxy")


@dataclass(frozen=True)
class Flow:
    """Entries to delete: to a service address (or any address on a node port), NATed to ip."""

    service_ip: str  # "" for node ports
    port: int
    endpoint_ip: str  # "" means every entry to the service address

    def args(self) -> list[str]:
        out = ["-D", "-p", "udp"]
        if self.service_ip:
            out += ["--orig-dst", self.service_ip]
        out += ["--orig-port-dst", str(self.port)]
        if self.endpoint_ip:
            out += ["--dst-nat", self.endpoint_ip]
        return out


def stale_flows(old: ServicePortModel | None, new: ServicePortModel | None) -> list[Flow]:
    """UDP flows that must go after a service port changed from old to new."""
    flows: list[Flow] = []
    ref = old or new
    if ref is None or ref.protocol != "UDP":
        return flows
    if old is not None:
        kept = {e.ip for e in new.all_reachable} if new is not None else set()
        gone = sorted({e.ip for e in old.all_reachable} - kept)
        for ip in gone:
            flows += [Flow(addr, old.port, ip) for addr in _service_ips(old)]
            if old.node_port:
                flows.append(Flow("", old.node_port, ip))
    if new is not None and new.all_reachable and (old is None or not old.all_reachable):
        # entries made while the Service had no endpoints would keep blackholing its clients
        flows += [Flow(addr, new.port, "") for addr in _service_ips(new)]
    return flows


def _service_ips(p: ServicePortModel) -> list[str]:
    return [p.cluster_ip, *p.external_ips, *p.load_balancer_ips]


def delete(flows: list[Flow]) -> int:
    """Delete the flows' entries; returns how many `conntrack` calls failed (not "none found")."""
    failed = 0
    for flow in flows:
        r = subprocess.run(["conntrack", *flow.args()], capture_output=True, text=True)
        # exit status 1 with "0 flow entries" just means there was nothing to delete
        if r.returncode != 0 and "0 flow entries" not in r.stderr:
            failed += 1
            log.warning("conntrack %s failed: %s", " ".join(flow.args()), r.stderr.strip())
    return failed
