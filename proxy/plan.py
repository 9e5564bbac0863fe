"""The traffic plan: every traffic-policy decision of the proxy, made once, for every mode.

A PortPlan says, for one service port, what happens to a new connection to each of its
destinations — which endpoints it may reach, whether it is masqueraded, what happens when
there is no endpoint, which sources a load-balancer IP admits — in words no mode owns. The
iptables, nftables and IPVS renderers only spell a plan in their syntax; the tracer
(proxy/tracer.py) walks the same plan, so a packet-flow table checks the decisions without
a kernel, and the real-packet suite checks that each mode spells them faithfully.

A NodePlan holds what does not depend on any Service: where node ports answer, and which
mode-specific checks exist (kube-proxy's nftables mode drops packets to unallocated service
addresses and rejects unknown ports of live cluster IPs; its iptables mode does neither; its
iptables mode installs the loadBalancerSourceRanges firewall only for a Service that has
endpoints, its nftables and IPVS modes for every one).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from proxy.model import EndpointInfo, NodeContext, ServicePortModel

REJECT = "reject"  # the Service has no usable endpoint anywhere: say so at once (ICMP / RST)
DROP = "drop"  # endpoints exist, none for this traffic policy here: the client's LB must retry elsewhere

MASQ_ALL = "all"  # --masquerade-all
MASQ_OFF_CLUSTER = "off-cluster"  # sources outside the cluster CIDR
MASQ_NONE = "none"  # no way to tell pods from others: masquerade nothing


@dataclass(frozen=True)
class Masquerade:
    """Which traffic to a cluster IP gets SNATed on its way to an endpoint."""

    kind: str  # MASQ_ALL / MASQ_OFF_CLUSTER / MASQ_NONE
    cluster_cidr: str = ""  # the pods' range, for MASQ_OFF_CLUSTER

    def applies(self, source: str) -> bool:
        if self.kind == MASQ_ALL:
            return True
        if self.kind == MASQ_OFF_CLUSTER:
            return not _within(source, self.cluster_cidr)
        return False


@dataclass(frozen=True)
class ShortCircuit:
    """externalTrafficPolicy Local, as kube-proxy does it: pods (cluster CIDR) and the node
    itself reach an external destination as if they had gone out to a load balancer and come
    back in, so neither traffic policy applies and they get the cluster endpoints; the node's
    own traffic is masqueraded (its source would be an address of the node, maybe the very
    LB IP it is connecting to)."""

    pod_cidr: str  # "" when the cluster CIDR is unknown: only the node itself short-circuits
    endpoints: tuple[EndpointInfo, ...]


@dataclass(frozen=True)
class PortPlan:
    """What happens to a new connection to one service port, destination by destination."""

    # ClusterIP traffic
    internal: tuple[EndpointInfo, ...]  # where it may go; () means internal_verdict
    internal_local: bool  # the endpoints are this node's (internalTrafficPolicy Local)
    internal_verdict: str  # REJECT or DROP when `internal` is empty ("" when it is not)
    masquerade: Masquerade
    # external traffic: externalIPs, load-balancer IPs, the node port
    external_handled: bool  # external destinations are NATed at all (endpoints exist somewhere)
    external: tuple[EndpointInfo, ...]  # where outside traffic may go; () means external_verdict
    external_local: bool  # externalTrafficPolicy Local: outside sources keep their address
    external_verdict: str  # REJECT or DROP when `external` is empty ("" when it is not)
    masquerade_external: bool  # policy Cluster: all external traffic is SNATed (it may cross nodes)
    short_circuit: ShortCircuit | None  # policy Local: local sources go to cluster endpoints
    # loadBalancerSourceRanges: sources the LB IPs admit; () means every source
    firewall: tuple[str, ...]
    # endpoints that may reach themselves through the Service (masqueraded, so replies return)
    hairpin: tuple[EndpointInfo, ...]

    @property
    def cluster_set(self) -> tuple[EndpointInfo, ...]:
        """The endpoints some destination reaches under policy Cluster (kube-proxy's cluster
        policy chain); () when no rule leads there."""
        if self.internal and not self.internal_local:
            return self.internal
        if self.external_handled and self.external and not self.external_local:
            return self.external
        return self.short_circuit_endpoints

    @property
    def local_set(self) -> tuple[EndpointInfo, ...]:
        """The endpoints some destination reaches under policy Local; () when none does."""
        if self.internal and self.internal_local:
            return self.internal
        if self.external_handled and self.external and self.external_local:
            return self.external
        return ()

    @property
    def endpoints(self) -> tuple[EndpointInfo, ...]:
        """Every endpoint some rule of this plan leads to."""
        return tuple(dict.fromkeys((*self.internal, *self.external, *self.short_circuit_endpoints)))

    @property
    def short_circuit_endpoints(self) -> tuple[EndpointInfo, ...]:
        return self.short_circuit.endpoints if self.short_circuit else ()

    @property
    def external_for_any_source(self) -> tuple[EndpointInfo, ...]:
        """Where external traffic goes in a mode that cannot tell local sources from outside
        ones (IPVS: one virtual server per address, whoever the client): the external
        endpoints, or, under policy Local with none of them here, the short-circuit's cluster
        endpoints. Pods and the node then get an answer as the short-circuit promises; an
        outside client reaches a remote endpoint unmasqueraded and loses its replies, as with
        kube-proxy's IPVS proxier (syncEndpoint, kubernetes/kubernetes#97081)."""
        return self.external or self.short_circuit_endpoints

    def local_source_goes_to_cluster(self, source: str, from_node: bool) -> bool:
        sc = self.short_circuit
        return bool(sc and sc.endpoints and (from_node or (sc.pod_cidr and _within(source, sc.pod_cidr))))


def plan_port(p: ServicePortModel, node: NodeContext) -> PortPlan:
    """The one place where traffic policy is decided (kube-proxy's syncProxyRules decisions)."""
    usable = p.any_usable
    internal = p.local_endpoints if p.internal_local else p.cluster_endpoints
    external = p.local_endpoints if p.external_local else p.cluster_endpoints
    if not p.externally_reachable:
        external = ()
    short = None
    if p.external_local and p.externally_reachable and usable:
        cidr = node.cluster_cidrs[0] if node.cluster_cidrs else ""
        short = ShortCircuit(cidr, p.cluster_endpoints)
    return PortPlan(
        internal=internal,
        internal_local=p.internal_local,
        internal_verdict="" if internal else (REJECT if not usable else DROP),
        masquerade=masquerade_for(node),
        external_handled=usable and p.externally_reachable,
        external=external,
        external_local=p.external_local,
        external_verdict="" if external or not p.externally_reachable else (REJECT if not usable else DROP),
        masquerade_external=not p.external_local,
        short_circuit=short,
        firewall=firewall_sources(p, node) if p.load_balancer_ips else (),
        hairpin=p.all_reachable,
    )


def masquerade_for(node: NodeContext) -> Masquerade:
    if node.masquerade_all:
        return Masquerade(MASQ_ALL)
    if node.cluster_cidrs:
        return Masquerade(MASQ_OFF_CLUSTER, node.cluster_cidrs[0])
    return Masquerade(MASQ_NONE)


def firewall_sources(p: ServicePortModel, node: NodeContext) -> tuple[str, ...]:
    """The sources loadBalancerSourceRanges admit to the LB IPs. When a range holds a node IP,
    the LB IPs themselves are admitted too: a node that has its LB IP as a local address
    reaches it with that address as source, never through the load balancer (kube-proxy's
    allowFromNode)."""
    ranges = p.load_balancer_source_ranges
    if not ranges:
        return ()
    nets = [ipaddress.ip_network(c, strict=False) for c in ranges]
    from_node = any(ipaddress.ip_address(ip) in n for ip in node.node_ips for n in nets if _same_family(ip, n))
    host = "/32" if node.family == 4 else "/128"
    return tuple(ranges) + (tuple(f"{ip}{host}" for ip in p.load_balancer_ips) if from_node else ())


def _same_family(ip: str, net: ipaddress.IPv4Network | ipaddress.IPv6Network) -> bool:
    return ipaddress.ip_address(ip).version == net.version


def _within(ip: str, cidr: str) -> bool:
    if not cidr:
        return False
    addr, net = ipaddress.ip_address(ip), ipaddress.ip_network(cidr, strict=False)
    return addr.version == net.version and addr in net


# ------------------------------------------------------------------ the node


@dataclass(frozen=True)
class NodePlan:
    """What a mode does besides Services, decided once per node configuration."""

    mode: str
    # where node ports answer: None means every local address (loopback per localhost_nodeports)
    nodeport_addresses: tuple[str, ...] | None
    localhost_nodeports: bool  # 127.0.0.1:nodePort is served (iptables mode, IPv4 only)
    drop_unallocated: tuple[str, ...]  # service CIDRs: an address no Service holds is dropped
    reject_unknown_ports: bool  # a live cluster IP on a port no Service has: rejected
    # loadBalancerSourceRanges filter a Service without endpoints too. kube-proxy differs by
    # mode here: its iptables proxier builds the firewall only when the Service has endpoints
    # (pkg/proxy/iptables/proxier.go: usesFWChain := hasEndpoints && ...), so every source
    # meets the no-endpoints REJECT; its nftables proxier builds it whatever the endpoints
    # (pkg/proxy/nftables/proxier.go: usesFWChain := len(LoadBalancerVIPs) > 0 && ...), so a
    # source the ranges do not admit is dropped first and an admitted one is rejected; its IPVS
    # proxier fills KUBE-LOAD-BALANCER-FW whatever the endpoints too.
    firewall_without_endpoints: bool = True

    def firewall_applies(self, plan: PortPlan) -> bool:
        """Whether the LB IPs of this plan filter their sources at all."""
        return bool(plan.firewall) and (plan.external_handled or self.firewall_without_endpoints)


def plan_node(node: NodeContext, mode: str) -> NodePlan:
    nftables = mode == "nftables"
    if node.nodeport_addresses and not node.nodeport_on_all_addresses():
        nets = [ipaddress.ip_network(c) for c in node.nodeport_addresses]
        addrs = sorted(set(node.node_ips) | set(node.local_addresses))
        selected: tuple[str, ...] | None = tuple(a for a in addrs if any(ipaddress.ip_address(a) in n for n in nets))
    elif nftables and not node.nodeport_addresses and node.node_ips:
        # kube-proxy's nftables mode defaults --nodeport-addresses to the node's primary IPs
        selected = tuple(sorted(node.node_ips))
    else:
        selected = None
    loopback = node.localhost_nodeports and node.family == 4 and mode == "iptables"
    if selected is not None:
        selected = tuple(a for a in selected if loopback or not ipaddress.ip_address(a).is_loopback)
    return NodePlan(
        mode=mode,
        nodeport_addresses=selected,
        localhost_nodeports=loopback,
        drop_unallocated=tuple(c for c in node.service_cidrs if _cidr_family(c) == node.family) if nftables else (),
        reject_unknown_ports=nftables,
        firewall_without_endpoints=mode != "iptables",
    )


def _cidr_family(cidr: str) -> int:
    return ipaddress.ip_network(cidr, strict=False).version
