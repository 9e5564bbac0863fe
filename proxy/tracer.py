"""A packet tracer over the plan: what happens to the first packet of a new connection, without
a kernel, in microseconds (kube-proxy's nftables helpers_test.go traces its rendered rules
the same way, table-driven).

The tracer reads the same PortPlans and NodePlan the renderers spell, in the order the
kernel meets them:

    1. loadBalancerSourceRanges (filter, before any NAT): a source the plan does not admit
       to an LB IP is dropped (in iptables mode only while the Service has endpoints: see
       NodePlan.firewall_without_endpoints);
    2. the service destination (cluster IP, external IP, LB IP, node port on an address the
       NodePlan serves): DNAT to the plan's endpoints, or the plan's reject/drop verdict;
       external traffic under policy Local short-circuits pods and the node itself;
    3. nothing matched: a live cluster IP on an unknown port is rejected and an address of a
       service CIDR no Service holds is dropped where the NodePlan says so (nftables mode);
       anything else passes untouched.

Masquerading is reported as the plan decides it, plus hairpin (an endpoint reaching itself).
That the modes spell the plan faithfully is what the real-packet suite checks.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from proxy.model import ProxyModel, ServicePortModel
from proxy.plan import DROP, REJECT, NodePlan, PortPlan, plan_node

ACCEPT = "accept"  # no rule of the proxy's touched the packet: it is routed as addressed


@dataclass(frozen=True)
class Packet:
    source: str
    dest: str
    port: int
    protocol: str = "TCP"
    from_node: bool = False  # sent by the node itself (its source is one of the node's addresses)


@dataclass(frozen=True)
class Verdict:
    action: str  # "dnat", REJECT, DROP or ACCEPT
    endpoints: tuple[str, ...] = ()  # ip:port the connection may be DNATed to, sorted
    masquerade: bool = False

    def __str__(self) -> str:
        if self.action != "dnat":
            return self.action.upper()
        return ", ".join(self.endpoints) + (" (masqueraded)" if self.masquerade else "")


class Tracer:
    """One tracer per node, over one model per IP family (dual stack: two proxiers, one node)."""

    def __init__(self, models: list[ProxyModel], mode: str):
        self.families: dict[int, tuple[ProxyModel, NodePlan]] = {
            m.node.family: (m, plan_node(m.node, mode)) for m in models
        }
        self.mode = mode
        self._dest: dict[int, dict[tuple[str, str, int], tuple[ServicePortModel, str]]] = {}
        self._node_ports: dict[int, dict[tuple[str, int], ServicePortModel]] = {}
        self._live: dict[int, set[str]] = {}
        for family, (model, _) in self.families.items():
            dest = self._dest[family] = {}
            nps = self._node_ports[family] = {}
            live = self._live[family] = set()
            for p in model.ports.values():
                live.add(p.cluster_ip)
                dest.setdefault((p.cluster_ip, p.protocol, p.port), (p, "cluster"))
                for ip in p.external_ips:
                    dest.setdefault((ip, p.protocol, p.port), (p, "external"))
                for ip in p.load_balancer_ips:
                    dest.setdefault((ip, p.protocol, p.port), (p, "lb"))
                if p.node_port:
                    nps.setdefault((p.protocol, p.node_port), p)

    def trace(self, pkt: Packet) -> Verdict:
        family = ipaddress.ip_address(pkt.dest).version
        if family not in self.families:
            return Verdict(ACCEPT)
        model, node_plan = self.families[family]
        hit = self._dest[family].get((pkt.dest, pkt.protocol, pkt.port))
        if hit is None and self._serves_node_ports(pkt.dest, model, node_plan):
            np = self._node_ports[family].get((pkt.protocol, pkt.port))
            hit = (np, "nodeport") if np is not None else None
        if hit is None:
            return self._unmatched(pkt, family, node_plan)
        p, kind = hit
        plan = p.plan
        assert plan is not None
        if kind == "lb" and node_plan.firewall_applies(plan) and not _in_any(pkt.source, plan.firewall):
            return Verdict(DROP)
        if kind == "cluster":
            if not plan.internal:
                return Verdict(plan.internal_verdict)
            return _dnat(pkt, plan.internal, plan.masquerade.applies(pkt.source))
        return _external(pkt, plan)

    def _serves_node_ports(self, dest: str, model: ProxyModel, node_plan: NodePlan) -> bool:
        if node_plan.nodeport_addresses is not None:
            return dest in node_plan.nodeport_addresses
        addr = ipaddress.ip_address(dest)
        if addr.is_loopback:
            return node_plan.localhost_nodeports
        node = model.node
        return dest in node.node_ips or dest in node.local_addresses

    def _unmatched(self, pkt: Packet, family: int, node_plan: NodePlan) -> Verdict:
        if node_plan.reject_unknown_ports and pkt.dest in self._live[family]:
            return Verdict(REJECT)
        if _in_any(pkt.dest, node_plan.drop_unallocated):
            return Verdict(DROP)
        return Verdict(ACCEPT)


def _external(pkt: Packet, plan: PortPlan) -> Verdict:
    if not plan.external_handled:
        return Verdict(plan.external_verdict or ACCEPT)
    if plan.local_source_goes_to_cluster(pkt.source, pkt.from_node):
        assert plan.short_circuit is not None
        return _dnat(pkt, plan.short_circuit.endpoints, pkt.from_node)
    if not plan.external:
        return Verdict(plan.external_verdict)
    return _dnat(pkt, plan.external, plan.masquerade_external)


def _dnat(pkt: Packet, endpoints, masquerade: bool) -> Verdict:
    hairpin = any(e.ip == pkt.source for e in endpoints)
    return Verdict("dnat", tuple(sorted(e.address for e in endpoints)), masquerade or hairpin)


def _in_any(ip: str, cidrs) -> bool:
    addr = ipaddress.ip_address(ip)
    for c in cidrs:
        net = ipaddress.ip_network(c, strict=False)
        if net.version == addr.version and addr in net:
            return True
    return False
