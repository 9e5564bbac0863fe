"""The iptables renderer: model -> Transaction, touching nothing (kube-proxy's iptables layout).

Traffic to a Service, in the nat table:

    PREROUTING/OUTPUT -> PODNET-SERVICES
        -d clusterIP --dport port             -> SVC (policy Cluster) or SVL (policy Local)
        -d externalIP / LB ingress IP --dport -> EXT (or FW first, for loadBalancerSourceRanges)
        dst-type LOCAL (node ports)           -> PODNET-NODEPORTS --dport nodePort -> EXT
    SVC/SVL: mark for masquerade when from outside the cluster CIDR, session affinity
             (`recent`), then an equal random choice (`statistic`) among the endpoints -> SEP
    EXT:     policy Cluster: mark for masquerade -> SVC;
             policy Local: pods and the node itself still go to SVC, everyone else -> SVL
    SEP:     mark hairpin traffic for masquerade, DNAT to the endpoint
    POSTROUTING -> PODNET-POSTROUTING: MASQUERADE what was marked

and in the filter table: REJECT a Service with no endpoints, DROP one whose Local policy has no
endpoints here (PODNET-SERVICES, PODNET-EXTERNAL-SERVICES), DROP what loadBalancerSourceRanges
do not allow (PODNET-PROXY-FIREWALL), ACCEPT health-check ports (PODNET-NODEPORTS) and
marked/established forwarded traffic (PODNET-FORWARD).

The renderer keeps the rules of every service port it rendered (RenderState); a partial sync
renders only the changed ones, rewrites the shared chains from the cache, and deletes the chains
of service ports that went away.
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from proxy.iptables import chains as C
from proxy.iptables.transaction import Transaction
from proxy.model import NodeContext, ProxyModel, ServicePortModel, ServicePortName

Chain = tuple[str, str]  # (table, chain)


@dataclass
class PortRules:
    """What one service port contributes: lines in the shared chains, and its own chains.

    The endpoint chains (SVC/SVL/SEP: most of all rules) are built on first use, so that a full
    sync can stream them into iptables-restore while it is already parsing: their names are
    known up front (to declare and to delete), their lines when `own` is first read.
    """

    shared: dict[Chain, list[str]]
    chains: tuple[Chain, ...]  # every chain of its own
    _own: dict[Chain, list[str] | tuple[str, ...]]
    _bulk: Callable[[], dict[Chain, list[str] | tuple[str, ...]]] | None = None

    @property
    def own(self) -> dict[Chain, list[str] | tuple[str, ...]]:
        if self._bulk is not None:
            self._own.update(self._bulk())
            self._bulk = None
        return self._own


@dataclass
class RenderState:
    ports: dict[ServicePortName, PortRules] = field(default_factory=dict)
    present: dict[str, set[str]] | None = None  # our chains in the kernel per table; None: unknown
    hooks_ok: bool = False


def render(
    model: ProxyModel,
    changed: set[ServicePortName],
    full: bool,
    state: RenderState,
    hooks: tuple[list[tuple[str, str]], list[tuple[str, str]]] | None = None,
) -> Transaction:
    """Plan the transaction that takes the kernel from `state` to `model`.

    `hooks` are the jump rules to insert and delete in the built-in chains, as (table, line)
    pairs found missing or stale by the executor (None when not checked this time).
    """
    if state.present is None and not full:
        raise ValueError("a partial sync needs to know which chains are present")
    ports = dict(state.ports)
    todo = model.ports.keys() if full else changed
    for name in todo:
        p = model.ports.get(name)
        if p is None:
            ports.pop(name, None)
        else:
            ports[name] = render_port(p, model.node)
    for name in list(ports):
        if name not in model.ports:
            del ports[name]

    tx = Transaction(full=full)
    wanted: dict[str, set[str]] = {t: set(C.SHARED_CHAINS[t]) for t in C.TABLES}
    for pr in ports.values():
        for table, chain in pr.chains:
            wanted[table].add(chain)

    _write_shared(tx, ports, model.node)
    rewrite = [ports[n] for n in (ports if full else sorted(changed & ports.keys()))]
    for pr in rewrite:
        for table, chain in pr.chains:
            tx.tables[table].declare.append(chain)
    for table in C.TABLES:
        tx.tables[table].lazy.append(functools.partial(_own_lines, rewrite, table))
    present = state.present or {t: set() for t in C.TABLES}
    for table in C.TABLES:
        stale = present[table] - wanted[table]
        if not full:  # a partial sync removes only chains of the service ports it rewrote
            old = {ch for n in changed if n in state.ports for (t, ch) in state.ports[n].chains if t == table}
            stale &= old
        tx.tables[table].delete.extend(sorted(stale))
    if hooks is not None:
        for table, line in hooks[0] + hooks[1]:
            tx.tables[table].hooks.append(line)

    tx.counter = lambda: {t: sum(len(lines) for lines in _all_lines(ports, t)) for t in C.TABLES}
    tx.state = RenderState(ports=ports, present=_present_after(present, wanted, full, tx), hooks_ok=True)
    return tx


def _own_lines(rewrite: list[PortRules], table: str) -> Iterator[str]:
    for pr in rewrite:
        for (t, _), lines in pr.own.items():
            if t == table and lines:
                yield "\n".join(lines) + "\n"


def _present_after(present: dict[str, set[str]], wanted: dict[str, set[str]], full: bool, tx) -> dict[str, set[str]]:
    out = {}
    for t in C.TABLES:
        now = set(present[t]) | set(tx.tables[t].declare)
        now -= set(tx.tables[t].delete)
        out[t] = now if not full else set(wanted[t])
    return out


def _all_lines(ports: dict[ServicePortName, PortRules], table: str):
    for pr in ports.values():
        for (t, _), lines in pr.own.items():
            if t == table:
                yield lines
        for (t, _), lines in pr.shared.items():
            if t == table:
                yield lines


def _write_shared(tx: Transaction, ports: dict[ServicePortName, PortRules], node: NodeContext) -> None:
    """Rewrite every shared chain: they hold a line per service port, from the cache."""
    shared: dict[Chain, list[str]] = {(t, c): [] for t in C.TABLES for c in C.SHARED_CHAINS[t]}
    for pr in ports.values():  # the model's order: stable, and no sort of 10,000 names per sync
        for key, lines in pr.shared.items():
            shared[key].extend(lines)
    shared[("nat", C.SERVICES)].extend(_nodeport_jumps(node))
    shared[("nat", C.POSTROUTING)] = [
        f"-A {C.POSTROUTING} -m mark ! --mark {C.MASQ_MARK}/{C.MASQ_MARK} -j RETURN",
        # clear the mark, so a packet that is re-routed (e.g. through IPsec) is not masqueraded twice
        f"-A {C.POSTROUTING} -j MARK --xor-mark {C.MASQ_MARK}",
        f'-A {C.POSTROUTING} -m comment --comment "podnet service traffic requiring SNAT" -j MASQUERADE --random-fully',
    ]
    shared[("nat", C.MARK_MASQ)] = [f"-A {C.MARK_MASQ} -j MARK --or-mark {C.MASQ_MARK}"]
    shared[("filter", C.FORWARD)] = [
        f'-A {C.FORWARD} -m comment --comment "podnet forwarding rules" -m mark --mark {C.MASQ_MARK}/{C.MASQ_MARK} '
        "-j ACCEPT",
        f'-A {C.FORWARD} -m comment --comment "podnet forwarding conntrack rule" -m conntrack --ctstate '
        "RELATED,ESTABLISHED -j ACCEPT",
    ]
    if node.localhost_nodeports and node.family == 4:
        # route_localnet lets 127.0.0.1:nodePort be DNATed; never let outsiders use it
        shared[("filter", C.FIREWALL)] = [
            f'-A {C.FIREWALL} -d 127.0.0.0/8 ! -s 127.0.0.0/8 -m comment --comment "block incoming localnet '
            'connections" -m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT -j DROP'
        ]
    for (table, chain), lines in shared.items():
        tx.tables[table].declare.append(chain)
        tx.tables[table].rules.extend(lines)


def _nodeport_jumps(node: NodeContext) -> list[str]:
    comment = '-m comment --comment "podnet service nodeports; NOTE: this must be the last rule in this chain"'
    if node.nodeport_on_all_addresses():
        not_local = "" if node.localhost_nodeports and node.family == 4 else "! -d 127.0.0.0/8 "
        return [f"-A {C.SERVICES} {comment} {not_local}-m addrtype --dst-type LOCAL -j {C.NODEPORTS}"]
    out = []
    for ip in nodeport_ips(node):
        if ipaddress.ip_address(ip).is_loopback and not node.localhost_nodeports:
            continue
        out.append(f"-A {C.SERVICES} {comment} -d {ip}/32 -j {C.NODEPORTS}")
    return out


def nodeport_ips(node: NodeContext) -> list[str]:
    """The node's addresses that --nodeport-addresses selects ("primary" was resolved to the
    node IPs' host prefixes by the daemon)."""
    nets = [ipaddress.ip_network(c) for c in node.nodeport_addresses]
    addrs = sorted(set(node.node_ips) | set(node.local_addresses))
    return [a for a in addrs if any(ipaddress.ip_address(a) in n for n in nets)]


# ---------------------------------------------------------------- one service port


def _match(p: ServicePortModel, dst: str | None, port: int) -> str:
    proto = p.protocol.lower()
    d = f"-d {dst}/32 " if dst else ""
    return f"{d}-p {proto} -m {proto} --dport {port}"


def render_port(p: ServicePortModel, node: NodeContext) -> PortRules:
    name = str(p.name)
    proto = p.protocol
    reachable_outside = p.externally_reachable
    ext = C.service_chain("EXT", name, proto) if reachable_outside else ""
    fw = C.service_chain("FW", name, proto) if p.load_balancer_source_ranges and p.load_balancer_ips else ""
    shared: dict[Chain, list[str]] = {}
    own: dict[Chain, list[str]] = {}

    def nat(chain: str, line: str) -> None:  # a line in one of this port's own nat chains
        own.setdefault(("nat", chain), []).append(f"-A {chain} {line}")

    def top(table: str, chain: str, line: str) -> None:  # a line in a shared chain
        shared.setdefault((table, chain), []).append(f"-A {chain} {line}")

    has_endpoints = p.any_usable
    cluster_chain = C.service_chain("SVC", name, proto) if p.uses_cluster_endpoints and p.cluster_endpoints else None
    local_chain = C.service_chain("SVL", name, proto) if p.uses_local_endpoints and p.local_endpoints else None
    internal_chain = local_chain if p.internal_local else cluster_chain
    unusable = "REJECT" if not has_endpoints else "DROP"
    cmt = f'-m comment --comment "{name}'
    no_eps = f'{cmt} has no endpoints"'

    # ClusterIP
    if internal_chain:
        top("nat", C.SERVICES, f'{cmt} cluster IP" {_match(p, p.cluster_ip, p.port)} -j {internal_chain}')
    else:
        top("filter", C.SERVICES, f"{no_eps} {_match(p, p.cluster_ip, p.port)} -j {unusable}")

    # external destinations: externalIPs, load-balancer IPs, node ports
    external_endpoints = bool(p.external_endpoints)
    uses_ext = has_endpoints and p.externally_reachable
    for ip in p.external_ips:
        if uses_ext:
            top("nat", C.SERVICES, f'{cmt} external IP" {_match(p, ip, p.port)} -j {ext}')
        if not external_endpoints:
            top("filter", C.EXTERNAL_SERVICES, f"{no_eps} {_match(p, ip, p.port)} -j {unusable}")
    for ip in p.load_balancer_ips:
        if uses_ext:
            target = fw if p.load_balancer_source_ranges else ext
            top("nat", C.SERVICES, f'{cmt} loadbalancer IP" {_match(p, ip, p.port)} -j {target}')
            if p.load_balancer_source_ranges:
                # allowed sources were DNATed in nat; whatever still goes to the LB IP is not allowed
                top("filter", C.PROXY_FIREWALL, f'{cmt} not allowed by {fw}" {_match(p, ip, p.port)} -j DROP')
        if not external_endpoints:
            top("filter", C.EXTERNAL_SERVICES, f"{no_eps} {_match(p, ip, p.port)} -j {unusable}")
    if p.node_port:
        if uses_ext:
            top("nat", C.NODEPORTS, f'{cmt}" {_match(p, None, p.node_port)} -j {ext}')
        if not external_endpoints:
            local = "-m addrtype --dst-type LOCAL"
            top("filter", C.EXTERNAL_SERVICES, f"{no_eps} {local} {_match(p, None, p.node_port)} -j {unusable}")
    if p.health_check_node_port:
        hc = f"-p tcp -m tcp --dport {p.health_check_node_port}"
        top("filter", C.NODEPORTS, f'{cmt} health check node port" {hc} -j ACCEPT')

    # the external traffic chain, and the firewall chain of loadBalancerSourceRanges
    if uses_ext:
        dests = f"{name} external destinations"
        if p.external_local:
            if cluster_chain:
                # pods and the node itself reach external destinations as if from outside and
                # back in through a load balancer: subject to neither traffic policy
                for cidr in node.cluster_cidrs[:1]:
                    nat(ext, f'-m comment --comment "pod traffic for {dests}" -s {cidr} -j {cluster_chain}')
                local_src = "-m addrtype --src-type LOCAL"
                nat(ext, f'-m comment --comment "masquerade LOCAL traffic for {dests}" {local_src} -j {C.MARK_MASQ}')
                nat(ext, f'-m comment --comment "route LOCAL traffic for {dests}" {local_src} -j {cluster_chain}')
            if local_chain:
                nat(ext, f"-j {local_chain}")
        elif cluster_chain:
            nat(ext, f'-m comment --comment "masquerade traffic for {dests}" -j {C.MARK_MASQ}')
            nat(ext, f"-j {cluster_chain}")
        own.setdefault(("nat", ext), [])  # without usable endpoints it falls through to the filter DROP
        if p.load_balancer_ips and p.load_balancer_source_ranges:
            for cidr in p.load_balancer_source_ranges:
                nat(fw, f'{cmt} loadbalancer IP" -s {cidr} -j {ext}')
            own.setdefault(("nat", fw), [])

    # policy chains and endpoints: the bulk of all rules, built when first read
    reachable = p.all_reachable
    seps = {ep.address: C.endpoint_chain(name, proto, ep.address) for ep in reachable}
    policy = [(c, eps) for c, eps in ((cluster_chain, p.cluster_endpoints), (local_chain, p.local_endpoints)) if c]

    def bulk() -> dict[Chain, list[str] | tuple[str, ...]]:
        out: dict[Chain, list[str] | tuple[str, ...]] = {}
        for chain, endpoints in policy:
            lines = []
            if chain == internal_chain:
                masq = _internal_masquerade(node)
                if masq is not None:
                    match = _match(p, p.cluster_ip, p.port)
                    lines.append(f'-A {chain} {cmt} cluster IP" {match} {masq}-j {C.MARK_MASQ}')
            lines += _endpoint_choice(chain, p.affinity_seconds, [seps[ep.address] for ep in endpoints])
            out[("nat", chain)] = lines
        # Endpoint rules carry no comments: there are many of them, the chain names and DNAT
        # targets say what they are, and every comment is one more match for the kernel to load
        # (kube-proxy drops them in large clusters for the same reason).
        lproto = proto.lower()
        for ep in reachable:
            sep = seps[ep.address]
            affinity = f"-m recent --set --name {sep} --mask 255.255.255.255 --rsource " if p.affinity_seconds else ""
            out[("nat", sep)] = (
                f"-A {sep} -s {ep.ip}/32 -j {C.MARK_MASQ}",  # hairpin: a pod reaching itself
                f"-A {sep} -p {lproto} {affinity}-j DNAT --to-destination {ep.address}",
            )
        return out

    chains = (*own, *(("nat", c) for c, _ in policy), *(("nat", sep) for sep in seps.values()))
    return PortRules(shared=shared, chains=chains, _own=dict(own), _bulk=bulk)  # (widened: bulk adds tuples)


def _internal_masquerade(node: NodeContext) -> str | None:
    """Masquerade off-cluster traffic to the cluster IP (all of it with --masquerade-all)."""
    if node.masquerade_all:
        return ""
    if node.cluster_cidrs:
        return f"! -s {node.cluster_cidrs[0]} "
    return None


def _endpoint_choice(chain: str, affinity_seconds: int, seps: list[str]) -> list[str]:
    """Session affinity first (a client seen recently goes back to its endpoint), then an equal
    random choice: the i-th of n rules matches with probability 1/(n-i)."""
    lines = []
    if affinity_seconds:
        for sep in seps:
            lines.append(f"-A {chain} -m recent --rcheck --seconds {affinity_seconds} --reap --name {sep} "
                         f"--mask 255.255.255.255 --rsource -j {sep}")  # fmt: skip
    n = len(seps)
    for i, sep in enumerate(seps):
        left = n - i
        if left > 1:
            lines.append(f"-A {chain} -m statistic --mode random --probability {1 / left:.11f} -j {sep}")
        else:
            lines.append(f"-A {chain} -j {sep}")
    return lines
