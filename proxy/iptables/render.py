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
of service ports that went away. A full sync streams: each service port's piece of restore input
declares its own chains and fills them, so iptables-restore parses while the next ports are
rendered (or taken from the cache, when their model is unchanged); the shared chains' rules, the
stale chains and the filter table follow. iptables-restore commits a table only at its COMMIT, so
a line it refuses anywhere applies nothing of that table.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from proxy.iptables import chains as C
from proxy.iptables.transaction import Transaction
from proxy.model import NodeContext, ProxyModel, ServicePortModel, ServicePortName
from proxy.plan import DROP, MASQ_ALL, MASQ_OFF_CLUSTER, REJECT, Masquerade, plan_node
from proxy.ruletext import comment

Chain = tuple[str, str]  # (table, chain)


@dataclass
class PortRules:
    """What one service port contributes: lines in the shared chains, and its own chains (all in
    the nat table) as one piece of restore input that declares and fills them.

    The piece is kept with the model it was rendered from: a later full sync over an unchanged
    service port streams it again instead of rendering it again.
    """

    source: ServicePortModel
    shared: dict[Chain, list[str]]
    chains: tuple[Chain, ...]  # every chain of its own
    text: str  # ":CHAIN - [0:0]" for each of its chains, then their "-A" lines
    rules: int  # how many "-A" lines `text` holds
    # the same, in parts: the chains other than endpoint chains (declared by `text` first) and
    # their lines, and each endpoint chain's lines by chain (changed_piece)
    head_names: tuple[str, ...] = ()
    head: str = ""
    endpoint_rules: dict[str, str] = field(default_factory=dict)


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

    A full sync renders its service ports while the transaction streams (each port's piece
    declares its own chains, so iptables-restore parses from the first port on); the shared
    chains' rules and the stale chains to delete follow them, once every port is known. A
    partial sync renders its few ports at once.

    `hooks` are the jump rules to insert and delete in the built-in chains, as (table, line)
    pairs found missing or stale by the executor (None when not checked this time).
    """
    if state.present is None and not full:
        raise ValueError("a partial sync needs to know which chains are present")
    tx = Transaction(full=full)
    for table in C.TABLES:
        tx.tables[table].declare.extend(C.SHARED_CHAINS[table])
    if hooks is not None:
        for table, line in hooks[0] + hooks[1]:
            tx.tables[table].hooks.append(line)
    present = state.present or {t: set() for t in C.TABLES}
    pieces = _pieces(model, changed, full, state, present, tx)
    if not full:
        pieces = iter(list(pieces))
    # the per-port chains are all in nat, and the shared chains' rules in both tables jump to
    # them or come from the same ports: nat streams first, filter follows once all is known
    tx.tables["nat"].lazy.append(_replayable(pieces))
    return tx


def _replayable(items: Iterator[str]) -> Callable[[], Iterator[str]]:
    """A producer of `items` that renders them on the first pass and repeats them after it
    (the text of a transaction that was streamed, for logs)."""
    done: list[str] = []

    def produce() -> Iterator[str]:
        yield from list(done)
        for item in items:
            done.append(item)
            yield item

    return produce


def _pieces(
    model: ProxyModel,
    changed: set[ServicePortName],
    full: bool,
    state: RenderState,
    present: dict[str, set[str]],
    tx: Transaction,
) -> Iterator[str]:
    """Render (or reuse) the service ports to write, yielding each one's piece; then complete
    the transaction: shared chains, stale chains, the state after it."""
    old = state.ports
    ports = dict(old) if not full else {}
    names = model.ports if full else sorted(changed)
    for name in names:
        p = model.ports.get(name)
        if p is None:
            ports.pop(name, None)
            continue
        pr = old.get(name)
        # the model replaces what changed, so identity means unchanged (render_port reads the
        # port's model only: its plan carries what the node decides)
        piece = pr.text if pr is not None else ""
        if pr is None or pr.source is not p:
            new = render_port(p, model.node)
            # the kernel holds `pr` only if the last sync applied it (a failure forces a full one)
            piece = new.text if full else changed_piece(new, pr)
            pr = new
        ports[name] = pr
        if piece:
            yield piece

    _write_shared(tx, ports, model.node)
    after = _full_chains(ports, present, tx.kernel, tx) if full else _partial_chains(ports, old, changed, present, tx)
    counts = {t: len(tx.tables[t].rules) for t in C.TABLES}
    counts["nat"] += sum(pr.rules for pr in ports.values())
    tx.counter = lambda: counts
    tx.state = RenderState(ports=ports, present=after, hooks_ok=True)


def _full_chains(
    ports: dict[ServicePortName, PortRules],
    present: dict[str, set[str]],
    kernel: dict[str, set[str]] | None,
    tx: Transaction,
) -> dict[str, set[str]]:
    """A full sync deletes every chain of ours it does not write (known from the last sync or
    read by apply from the kernel); returns our chains after it."""
    wanted: dict[str, set[str]] = {t: set(C.SHARED_CHAINS[t]) for t in C.TABLES}
    for pr in ports.values():
        for table, chain in pr.chains:
            wanted[table].add(chain)
    for table in C.TABLES:
        stale = (present[table] | (kernel or {}).get(table, set())) - wanted[table]
        tx.tables[table].delete.extend(sorted(stale))
    return wanted


def _partial_chains(
    ports: dict[ServicePortName, PortRules],
    old: dict[ServicePortName, PortRules],
    changed: set[ServicePortName],
    present: dict[str, set[str]],
    tx: Transaction,
) -> dict[str, set[str]]:
    """A partial sync deletes only the chains the changed service ports no longer have (chain
    names hash the service port, so no other port has them): work in proportion to the change.
    Returns our chains after it."""
    after = {}
    for table in C.TABLES:
        gone = {ch for n in changed if n in old for (t, ch) in old[n].chains if t == table}
        fresh = {ch for n in changed if n in ports for (t, ch) in ports[n].chains if t == table}
        stale = (gone - fresh) & present[table]
        tx.tables[table].delete.extend(sorted(stale))
        after[table] = (present[table] | fresh) - stale
    return after


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
    if plan_node(node, "iptables").localhost_nodeports:
        # route_localnet lets 127.0.0.1:nodePort be DNATed; never let outsiders use it
        shared[("filter", C.FIREWALL)] = [
            f'-A {C.FIREWALL} -d 127.0.0.0/8 ! -s 127.0.0.0/8 -m comment --comment "block incoming localnet '
            'connections" -m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT -j DROP'
        ]
    for (table, _), lines in shared.items():
        tx.tables[table].rules.extend(lines)


def _nodeport_jumps(node: NodeContext) -> list[str]:
    note = '-m comment --comment "podnet service nodeports; NOTE: this must be the last rule in this chain"'
    where = plan_node(node, "iptables")
    if where.nodeport_addresses is None:
        loopback = "127.0.0.0/8" if node.family == 4 else "::1/128"
        not_local = "" if where.localhost_nodeports else f"! -d {loopback} "
        return [f"-A {C.SERVICES} {note} {not_local}-m addrtype --dst-type LOCAL -j {C.NODEPORTS}"]
    return [f"-A {C.SERVICES} {note} -d {ip}{_host(ip)} -j {C.NODEPORTS}" for ip in where.nodeport_addresses]


# ---------------------------------------------------------------- one service port


def _host(ip: str) -> str:
    return "/128" if ":" in ip else "/32"


def _match(p: ServicePortModel, dst: str | None, port: int) -> str:
    proto = p.protocol.lower()
    d = f"-d {dst}{_host(dst)} " if dst else ""
    return f"{d}-p {proto} -m {proto} --dport {port}"


VERDICTS = {REJECT: "REJECT", DROP: "DROP"}


def render_port(p: ServicePortModel, node: NodeContext) -> PortRules:
    """Spell one service port's plan (proxy/plan.py) as kube-proxy's iptables layout; no
    traffic decision is taken here."""
    plan = p.plan
    assert plan is not None, "the model plans every service port"
    name = str(p.name)
    proto = p.protocol
    ext = C.service_chain("EXT", name, proto) if p.externally_reachable else ""
    fw = C.service_chain("FW", name, proto) if plan.firewall else ""
    shared: dict[Chain, list[str]] = {}
    own: dict[Chain, list[str]] = {}

    def nat(chain: str, line: str) -> None:  # a line in one of this port's own nat chains
        own.setdefault(("nat", chain), []).append(f"-A {chain} {line}")

    def top(table: str, chain: str, line: str) -> None:  # a line in a shared chain
        shared.setdefault((table, chain), []).append(f"-A {chain} {line}")

    cluster_chain = C.service_chain("SVC", name, proto) if plan.cluster_set else None
    local_chain = C.service_chain("SVL", name, proto) if plan.local_set else None
    internal_chain = (local_chain if plan.internal_local else cluster_chain) if plan.internal else None
    external_chain = (local_chain if plan.external_local else cluster_chain) if plan.external else None

    def cmt(what: str) -> str:  # this port's comment: its validated name, quoted by the one function
        return f"-m comment --comment {comment(name + what)}"

    no_eps = cmt(" has no endpoints")

    # ClusterIP
    if internal_chain:
        top("nat", C.SERVICES, f"{cmt(' cluster IP')} {_match(p, p.cluster_ip, p.port)} -j {internal_chain}")
    else:
        top("filter", C.SERVICES, f"{no_eps} {_match(p, p.cluster_ip, p.port)} -j {VERDICTS[plan.internal_verdict]}")

    # external destinations: externalIPs, load-balancer IPs, node ports. Traffic the nat table
    # did not send anywhere meets the filter verdict (it is still addressed to the destination).
    handled = plan.external_handled
    verdict = VERDICTS.get(plan.external_verdict)
    for ip in p.external_ips:
        if handled:
            top("nat", C.SERVICES, f"{cmt(' external IP')} {_match(p, ip, p.port)} -j {ext}")
        if verdict:
            top("filter", C.EXTERNAL_SERVICES, f"{no_eps} {_match(p, ip, p.port)} -j {verdict}")
    for ip in p.load_balancer_ips:
        if handled:
            top("nat", C.SERVICES, f"{cmt(' loadbalancer IP')} {_match(p, ip, p.port)} -j {fw or ext}")
            if fw:
                # allowed sources were DNATed in nat; whatever still goes to the LB IP is not allowed
                top("filter", C.PROXY_FIREWALL, f"{cmt(f' not allowed by {fw}')} {_match(p, ip, p.port)} -j DROP")
        if verdict:
            top("filter", C.EXTERNAL_SERVICES, f"{no_eps} {_match(p, ip, p.port)} -j {verdict}")
    if p.node_port:
        if handled:
            top("nat", C.NODEPORTS, f"{cmt('')} {_match(p, None, p.node_port)} -j {ext}")
        if verdict:
            local = "-m addrtype --dst-type LOCAL"
            top("filter", C.EXTERNAL_SERVICES, f"{no_eps} {local} {_match(p, None, p.node_port)} -j {verdict}")
    if p.health_check_node_port:
        hc = f"-p tcp -m tcp --dport {p.health_check_node_port}"
        top("filter", C.NODEPORTS, f"{cmt(' health check node port')} {hc} -j ACCEPT")

    # the external traffic chain, and the firewall chain of loadBalancerSourceRanges
    if handled:

        def about(what: str) -> str:
            return f"-m comment --comment {comment(f'{what} for {name} external destinations')}"

        sc = plan.short_circuit
        if sc is not None and sc.endpoints and cluster_chain:
            if sc.pod_cidr:
                nat(ext, f"{about('pod traffic')} -s {sc.pod_cidr} -j {cluster_chain}")
            local_src = "-m addrtype --src-type LOCAL"
            nat(ext, f"{about('masquerade LOCAL traffic')} {local_src} -j {C.MARK_MASQ}")
            nat(ext, f"{about('route LOCAL traffic')} {local_src} -j {cluster_chain}")
        if external_chain:
            if plan.masquerade_external:
                nat(ext, f"{about('masquerade traffic')} -j {C.MARK_MASQ}")
            nat(ext, f"-j {external_chain}")
        own.setdefault(("nat", ext), [])  # without usable endpoints it falls through to the filter DROP
        if fw:
            for cidr in plan.firewall:
                nat(fw, f"{cmt(' loadbalancer IP')} -s {cidr} -j {ext}")
            own.setdefault(("nat", fw), [])

    # policy chains and endpoints: the bulk of all rules, written straight into the port's piece
    reachable = plan.hairpin
    seps = {ep.address: C.endpoint_chain(name, proto, ep.address) for ep in reachable}
    policy = [(c, eps) for c, eps in ((cluster_chain, plan.cluster_set), (local_chain, plan.local_set)) if c]
    masq = _internal_masquerade(plan.masquerade)
    host = _host(p.cluster_ip)
    mask = _MASKS[host]
    names = [*(c for _, c in own), *(c for c, _ in policy), *seps.values()]
    body = [line for lines in own.values() for line in lines]
    for chain, endpoints in policy:
        if chain == internal_chain and masq is not None:
            match = _match(p, p.cluster_ip, p.port)
            body.append(f"-A {chain} {cmt(' cluster IP')} {match} {masq}-j {C.MARK_MASQ}")
        body += _endpoint_choice(chain, p.affinity_seconds, [seps[ep.address] for ep in endpoints], mask)
    # Endpoint rules carry no comments: there are many of them, the chain names and DNAT
    # targets say what they are, and every comment is one more match for the kernel to load
    # (kube-proxy drops them in large clusters for the same reason).
    lproto = proto.lower()
    endpoint_rules = {}
    for ep in reachable:
        sep = seps[ep.address]
        affinity = f"-m recent --set --name {sep} --mask {mask} --rsource " if p.affinity_seconds else ""
        endpoint_rules[sep] = (
            f"-A {sep} -s {ep.ip}{host} -j {C.MARK_MASQ}\n"  # hairpin: a pod reaching itself
            f"-A {sep} -p {lproto} {affinity}-j DNAT --to-destination {ep.address}\n"
        )
    head_names = names[: len(names) - len(seps)]
    head = "".join(line + "\n" for line in body)
    text = _piece(head_names, head, endpoint_rules)
    rules = len(body) + 2 * len(endpoint_rules)
    return PortRules(p, shared, tuple(("nat", c) for c in names), text, rules, tuple(head_names), head, endpoint_rules)


def _piece(head_names: list[str] | tuple[str, ...], head: str, endpoint_rules: dict[str, str]) -> str:
    """Restore input that declares (so flushes) and fills these chains: the port's own and
    policy chains (`head`), then endpoint chains."""
    declare = "".join([f":{c} - [0:0]\n" for c in (*head_names, *endpoint_rules)])
    return declare + head + "".join(endpoint_rules.values())


def changed_piece(new: PortRules, old: PortRules | None) -> str:
    """What a partial sync writes for a service port: its own and policy chains whole (the
    endpoint choice spans every endpoint), but only the endpoint chains that are new or differ.
    An endpoint chain's name hashes the port and the endpoint, and it holds nothing else, so one
    left out is already right in the kernel; with a thousand endpoints this is most of the text
    (kube-proxy's partial sync skips them the same way)."""
    if old is None:
        return new.text
    fresh = {c: r for c, r in new.endpoint_rules.items() if old.endpoint_rules.get(c) != r}
    return _piece(new.head_names, new.head, fresh)


def _internal_masquerade(m: Masquerade) -> str | None:
    """The match of the masquerade rule in front of the internal policy chain (None: no rule)."""
    if m.kind == MASQ_ALL:
        return ""
    if m.kind == MASQ_OFF_CLUSTER:
        return f"! -s {m.cluster_cidr} "
    return None


_MASKS = {"/32": "255.255.255.255", "/128": "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"}


def _endpoint_choice(chain: str, affinity_seconds: int, seps: list[str], mask: str) -> list[str]:
    """Session affinity first (a client seen recently goes back to its endpoint), then an equal
    random choice: the i-th of n rules matches with probability 1/(n-i)."""
    lines = []
    if affinity_seconds:
        for sep in seps:
            lines.append(f"-A {chain} -m recent --rcheck --seconds {affinity_seconds} --reap --name {sep} "
                         f"--mask {mask} --rsource -j {sep}")  # fmt: skip
    n = len(seps)
    for i, sep in enumerate(seps):
        left = n - i
        if left > 1:
            lines.append(f"-A {chain} -m statistic --mode random --probability {_probability(left)} -j {sep}")
        else:
            lines.append(f"-A {chain} -j {sep}")
    return lines


@functools.cache
def _probability(left: int) -> str:
    return f"{1 / left:.11f}"
