"""The IPVS mode's desired state, rendered from the model (kube-proxy's pkg/proxy/ipvs layout):

- a virtual server per Service address and port: the cluster IP, each external IP and
  load-balancer IP, and each node address for a node port; its real servers are the
  endpoints the model chose (cluster-wide, or this node's for a Local traffic policy);
  session affinity becomes IPVS persistence with the affinity timeout;
- the Service addresses bound to the dummy interface podnet-ipvs0, so the kernel accepts
  traffic to them as local and IPVS (on INPUT) sees it;
- ipsets for the companion iptables rules (companion.py): cluster IPs, external and
  load-balancer IPs, node ports per protocol, hairpin triples, source ranges. An IPv6
  proxier's sets are PODNET-6-* of family inet6 (kube-proxy's KUBE-6-* beside KUBE-*), so
  both families' sets live side by side on a dual-stack node.

Pure data, nothing touches the kernel here.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

from proxy.model import EndpointInfo, NodeContext, ProxyModel, ServicePortModel

SCHEDULERS = ("rr", "lc", "sh")
DUMMY = "podnet-ipvs0"
FWD_MASQ = 0  # IP_VS_CONN_F_MASQ: real servers are reached by DNAT


class InvalidScheduler(ValueError):
    pass


def check_scheduler(name: str) -> str:
    if name not in SCHEDULERS:
        raise InvalidScheduler(f"--ipvs-scheduler: {name!r} is not supported (use one of {', '.join(SCHEDULERS)})")
    return name


@dataclass(frozen=True, order=True)
class VirtualKey:
    address: str
    protocol: str  # TCP / UDP / SCTP
    port: int


@dataclass(frozen=True)
class VirtualServer:
    key: VirtualKey
    scheduler: str
    persistence: int = 0  # seconds of session affinity; 0: none
    reals: tuple[tuple[str, int], ...] = ()  # (ip, port), sorted

    @property
    def flags(self) -> int:
        return 0x0001 if self.persistence else 0  # IP_VS_SVC_F_PERSISTENT


@dataclass
class DesiredState:
    servers: dict[VirtualKey, VirtualServer] = field(default_factory=dict)
    addresses: set[str] = field(default_factory=set)  # on the dummy interface
    ipsets: dict[str, set[str]] = field(default_factory=dict)  # by IPSETS name (set_name: the kernel's)
    family: int = 4


IPSETS = {
    # name: (type, comment)
    "PODNET-CLUSTER-IP": ("hash:ip,port", "cluster IP + port: masquerade off-cluster sources"),
    "PODNET-EXTERNAL-IP": ("hash:ip,port", "external IP + port"),
    "PODNET-LOAD-BALANCER": ("hash:ip,port", "load-balancer ingress IP + port"),
    "PODNET-LOAD-BALANCER-FW": ("hash:ip,port", "load-balancer IP + port with source ranges"),
    "PODNET-LB-SOURCE-CIDR": ("hash:ip,port,net", "load-balancer IP + port + allowed source"),
    "PODNET-LOOP-BACK": ("hash:ip,port,ip", "endpoint + port + endpoint: hairpin, masqueraded"),
    "PODNET-NODE-PORT-TCP": ("bitmap:port range 0-65535", "TCP node ports"),
    "PODNET-NODE-PORT-UDP": ("bitmap:port range 0-65535", "UDP node ports"),
    "PODNET-NODE-PORT-SCTP": ("hash:ip,port", "SCTP node ports (node address + port)"),
    "PODNET-NODE-PORT-LOCAL-TCP": ("bitmap:port range 0-65535", "TCP node ports, policy Local"),
    "PODNET-NODE-PORT-LOCAL-UDP": ("bitmap:port range 0-65535", "UDP node ports, policy Local"),
    "PODNET-EXTERNAL-LOCAL": ("hash:ip,port", "external/LB IP + port, policy Local"),
}


def set_name(name: str, family: int) -> str:
    """The kernel's name of one of IPSETS for a family (at most 31 characters)."""
    return name if family == 4 else name.replace("PODNET-", "PODNET-6-", 1)


def set_kind(kind: str, family: int) -> str:
    """`ipset create` type and options: hash sets hold one family; port bitmaps hold none."""
    return kind if family == 4 or kind.startswith("bitmap:") else f"{kind} family inet6"


def host_prefix(address: str) -> str:
    return f"{address}/128" if ":" in address else f"{address}/32"


def nodeport_addresses(node: NodeContext) -> list[str]:
    """The node addresses node ports are served on (loopback excluded, as kube-proxy's IPVS
    mode does)."""
    addrs = sorted(set(node.node_ips) | set(node.local_addresses))
    if not node.nodeport_on_all_addresses():
        nets = [ipaddress.ip_network(c) for c in node.nodeport_addresses]
        addrs = [a for a in addrs if any(ipaddress.ip_address(a) in n for n in nets)]
    return [a for a in addrs if not ipaddress.ip_address(a).is_loopback]


def render(model: ProxyModel, scheduler: str) -> DesiredState:
    state = DesiredState(ipsets={name: set() for name in IPSETS}, family=model.node.family)
    np_addrs = nodeport_addresses(model.node)
    for p in model.ports.values():
        _render_port(p, scheduler, np_addrs, state)
    return state


def _reals(endpoints: tuple[EndpointInfo, ...]) -> tuple[tuple[str, int], ...]:
    return tuple(sorted((e.ip, e.port) for e in endpoints))


def _render_port(p: ServicePortModel, scheduler: str, np_addrs: list[str], s: DesiredState) -> None:
    """Spell one service port's plan (proxy/plan.py) as virtual servers and ipset entries."""
    plan = p.plan
    assert plan is not None, "the model plans every service port"
    proto = p.protocol
    lproto = proto.lower()

    def server(addr: str, port: int, endpoints) -> None:
        key = VirtualKey(addr, proto, port)
        s.servers[key] = VirtualServer(key, scheduler, p.affinity_seconds, _reals(endpoints))

    # kube-proxy binds every Service address to the dummy interface, endpoints or not: a new
    # connection to a virtual server without real servers is refused by IPVS itself (ICMP
    # port unreachable, the kernel's ip_vs_leave); the companion rules add no REJECT
    server(p.cluster_ip, p.port, plan.internal)
    s.addresses.add(p.cluster_ip)
    s.ipsets["PODNET-CLUSTER-IP"].add(f"{p.cluster_ip},{lproto}:{p.port}")

    # external destinations: IPVS cannot tell pods and the node from outside clients, so the
    # policy-Local short-circuit becomes "the cluster endpoints when none is here" for all
    external_reals = plan.external_for_any_source

    def external(addr: str, ipset: str) -> None:
        """An external or load-balancer address: served like the ClusterIP, to external endpoints."""
        server(addr, p.port, external_reals)
        s.addresses.add(addr)
        s.ipsets[ipset].add(f"{addr},{lproto}:{p.port}")
        if p.external_local:
            s.ipsets["PODNET-EXTERNAL-LOCAL"].add(f"{addr},{lproto}:{p.port}")

    for addr in p.external_ips:
        external(addr, "PODNET-EXTERNAL-IP")
    for addr in p.load_balancer_ips:
        external(addr, "PODNET-LOAD-BALANCER")
        if plan.firewall:
            s.ipsets["PODNET-LOAD-BALANCER-FW"].add(f"{addr},{lproto}:{p.port}")
            for cidr in plan.firewall:
                s.ipsets["PODNET-LB-SOURCE-CIDR"].add(f"{addr},{lproto}:{p.port},{cidr}")
    if p.node_port:
        for addr in np_addrs:
            server(addr, p.node_port, external_reals)
        if proto == "SCTP":
            for addr in np_addrs:
                s.ipsets["PODNET-NODE-PORT-SCTP"].add(f"{addr},sctp:{p.node_port}")
        else:
            s.ipsets[f"PODNET-NODE-PORT-{proto}"].add(str(p.node_port))
            if p.external_local:
                s.ipsets[f"PODNET-NODE-PORT-LOCAL-{proto}"].add(str(p.node_port))
    for e in plan.hairpin:
        s.ipsets["PODNET-LOOP-BACK"].add(f"{e.ip},{lproto}:{e.port},{e.ip}")
