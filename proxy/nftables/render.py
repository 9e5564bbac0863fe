"""What one service port contributes to podnet's nftables table, as data (no text, no kernel).

A contribution is the map elements (map, key, value) and the chains and sets it needs.
Picker chains (`int-tcp`, `np-ext-udp`, …) are shared by every service port of the same kind
and protocol; a port with N endpoints is a member of the count set `<picker>-N`, which the
picker's rule for N matches (layout.py). Pickers and count sets are named by that and defined
by `picker_rules` and `count_set_body`, so a contribution only names them. Chains and sets of
session-affinity Services are the service port's own.

Which endpoints, which masquerading, which verdict when there are none: the same decisions as
the iptables renderer (proxy/iptables/render.py), with kube-proxy's nftables-mode differences:
node ports are not served on loopback addresses, an unknown port of a live cluster IP is
rejected and a service-CIDR address no Service holds is dropped (layout.fixed_chains).
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field

from proxy.model import EndpointInfo, NodeContext, ServicePortModel
from proxy.nftables.layout import PROTOCOLS, Family
from proxy.plan import MASQ_ALL, MASQ_OFF_CLUSTER, REJECT, masquerade_for

Element = tuple[str, str, str]  # (map or set, key, value; "" for a set)


@dataclass(frozen=True)
class Contribution:
    elements: tuple[Element, ...] = ()  # each once, in a fixed order (a rebuild writes them as they come)
    chains: dict[str, tuple[str, ...]] = field(default_factory=dict)  # own chains: name -> rules
    pickers: tuple[str, ...] = ()  # shared picker chains used
    sets: dict[str, str] = field(default_factory=dict)  # own sets: name -> `set …` body
    counts: tuple[str, ...] = ()  # shared count sets the port is a member of


def _hash(text: str) -> str:
    return base64.b32encode(hashlib.sha256(text.encode()).digest()).decode()[:8]


def masquerade_rule(node: NodeContext, f: Family) -> str | None:
    """The plan's masquerading of cluster-IP traffic (node-wide, so one rule serves every
    internal picker chain)."""
    m = masquerade_for(node)
    if m.kind == MASQ_ALL:
        return "jump mark-for-masquerade"
    if m.kind == MASQ_OFF_CLUSTER:
        return f"{f.name} saddr != {m.cluster_cidr} jump mark-for-masquerade"
    return None


def picker(kind: str, proto: str, np: bool = False) -> str:
    """The shared chain that picks an endpoint: [np-]{int,ext,extl,pickc}-PROTO."""
    return f"{'np-' if np else ''}{kind}-{proto}"


def count_set(chain: str, n: int) -> str:
    """The set of service ports (daddr . dport, or dport for node ports) for which picker
    `chain` picks one of n endpoints."""
    return f"{chain}-{n}"


def split_count_set(name: str) -> tuple[str, int]:
    chain, _, n = name.rpartition("-")
    return chain, int(n)


def count_set_body(name: str, f: Family) -> str:
    key = "inet_service" if name.startswith("np-") else f"{f.addr_type} . inet_service"
    return f"set {name} {{ type {key} ; }}"


def is_picker(name: str) -> bool:
    parts = name.removeprefix("np-").split("-")
    return len(parts) == 2 and parts[0] in ("int", "ext", "extl", "pickc") and parts[1] in PROTOCOLS


def picker_rules(name: str, counts: Iterable[int], node: NodeContext, f: Family) -> tuple[str, ...]:
    """The rules of a shared picker chain, from its name (see `picker`) and the endpoint
    counts its members have: a DNAT rule per count, each matching its count set. A port
    whose endpoint count changes moves between count sets (element changes only: no verdict
    changes, so the kernel need not re-validate the table's jumps)."""
    np = name.startswith("np-")
    kind, proto = name.removeprefix("np-").split("-")
    ip = f.name
    prefix = "np-" if np else ""
    slot_key = "th dport" if np else f"{ip} daddr . th dport"
    slots = f"{prefix}slots-cluster-{proto}" if kind == "pickc" else f"{prefix}slots-{proto}"
    dnat = tuple(
        f"{slot_key} @{count_set(name, n)} meta l4proto {proto} "
        f"dnat {ip} to {slot_key} . numgen random mod {n} map @{slots}"
        for n in sorted(counts)
    )
    if kind == "int":
        masq = masquerade_rule(node, f)
        return ((masq,) if masq else ()) + dnat
    if kind == "ext":
        return ("jump mark-for-masquerade", *dnat)
    if kind == "extl":
        # the plan's short-circuit (plan.ShortCircuit): pods and the node itself go to the
        # cluster endpoints, the node masqueraded; everyone else to this node's endpoints
        # (a port without local endpoints is in no count set: only the short-circuit applies)
        key = "meta l4proto . th dport" if np else f"{ip} daddr . meta l4proto . th dport"
        to_cluster = f"{key} vmap @{prefix}cluster-dispatch"
        pod_cidr = masquerade_for(node).cluster_cidr or (node.cluster_cidrs[0] if node.cluster_cidrs else "")
        pods = [f"{ip} saddr {pod_cidr} {to_cluster}"] if pod_cidr else []
        return (*pods, "fib saddr type local jump mark-for-masquerade", f"fib saddr type local {to_cluster}", *dnat)
    if kind == "pickc":
        return dnat
    raise ValueError(f"not a picker chain: {name}")


def port_key(p: ServicePortModel, addr: str, f: Family) -> str:
    return f"{addr} . {p.protocol.lower()} . {p.port}"


def _verdict(v: str, short_circuit: bool = False) -> str:
    if v == REJECT:
        return "goto reject-chain"
    # The filter check runs before the nat output hook: the node's own connections, which the
    # plan sends to cluster endpoints, must pass it (pods pass anyway: they are DNATed first).
    return "goto drop-unless-local" if short_circuit else "drop"


def contribution(p: ServicePortModel, node: NodeContext, f: Family) -> Contribution:
    """Spell one service port's plan (proxy/plan.py) as map elements and picker chains; no
    traffic decision is taken here."""
    plan = p.plan
    assert plan is not None, "the model plans every service port"
    proto = p.protocol.lower()
    elements: dict[Element, None] = {}  # ordered, each once
    pickers: dict[str, None] = {}  # ordered, as elements
    chains: dict[str, tuple[str, ...]] = {}
    sets: dict[str, str] = {}
    short = plan.short_circuit_endpoints

    elements[("cluster-ips", p.cluster_ip, "")] = None
    ip_keys = {"internal": [port_key(p, p.cluster_ip, f)]}
    external_addrs = (*p.external_ips, *p.load_balancer_ips)
    ip_keys["external"] = [port_key(p, a, f) for a in external_addrs]
    np_key = f"{proto} . {p.node_port}" if p.node_port else None

    if plan.internal_verdict:
        elements[("no-endpoint-services", ip_keys["internal"][0], _verdict(plan.internal_verdict))] = None
    if plan.external_verdict:
        v = _verdict(plan.external_verdict, bool(short))
        for k in ip_keys["external"]:
            elements[("no-endpoint-services", k, v)] = None
        if np_key:
            elements[("no-endpoint-nodeports", np_key, v)] = None
    for a in p.load_balancer_ips if plan.firewall else ():
        k = port_key(p, a, f)
        elements[("firewall-ips", k, "")] = None
        elements.update(dict.fromkeys(("firewall-allow", f"{k} . {cidr}", "") for cidr in plan.firewall))
    elements.update({("hairpin", f"{e.ip} . {e.ip}", ""): None for e in plan.hairpin})

    if p.affinity_seconds:
        _affinity(p, node, f, elements, chains, sets, ip_keys, np_key if plan.external_handled else None)
        return Contribution(tuple(elements), chains, tuple(pickers), sets)
    counts: dict[str, None] = {}
    v4 = f.name == "ip"

    def pick(chain: str, table: str, key: str, endpoints) -> None:
        """Let `chain` pick one of `endpoints` for `key`: its count set, its slots."""
        pickers[chain] = None
        if endpoints:
            counts[name := count_set(chain, len(endpoints))] = None
            elements[(name, key, "")] = None
        # (the slots of 100,000 endpoints in a full sync: spelled inline, not by _ep)
        if v4:
            elements.update({(table, f"{key} . {i}", f"{e.ip} . {e.port}"): None for i, e in enumerate(endpoints)})
        else:
            elements.update({(table, f"{key} . {i}", f"[{e.ip}] . {e.port}"): None for i, e in enumerate(endpoints)})

    if plan.internal:
        chain = picker("int", proto)
        elements[("service-ips", ip_keys["internal"][0], f"goto {chain}")] = None
        pick(chain, f"slots-{proto}", f"{p.cluster_ip} . {p.port}", plan.internal)
    external = plan.external
    if plan.external_handled and (external or (plan.external_local and short)):
        kind = "extl" if plan.external_local else "ext"
        targets = [(k, f"{a} . {p.port}", False) for k, a in zip(ip_keys["external"], external_addrs, strict=True)]
        if np_key:
            targets.append((np_key, str(p.node_port), True))
        for k, slot_key, np in targets:
            prefix = "np-" if np else ""
            chain = picker(kind, proto, np)
            elements[("service-nodeports" if np else "service-ips", k, f"goto {chain}")] = None
            pick(chain, f"{prefix}slots-{proto}", slot_key, external)
            if kind == "extl" and short:
                chain = picker("pickc", proto, np)
                elements[(f"{prefix}cluster-dispatch", k, f"goto {chain}")] = None
                pick(chain, f"{prefix}slots-cluster-{proto}", slot_key, short)
    return Contribution(tuple(elements), chains, tuple(pickers), sets, tuple(counts))


def _affinity(p, node, f, elements, chains, sets, ip_keys, np_key) -> None:
    """kube-proxy's layout for a session-affinity service port: chains svc- (cluster endpoints),
    svl- (local endpoints), ext- (external traffic policy) and one per endpoint that records
    the client in the endpoint's dynamic set and DNATs to it."""
    plan = p.plan
    ip = f.name
    h = _hash(str(p.name) + p.protocol)
    base = f"{h}-{p.name.namespace}/{p.name.name}/{p.protocol.lower()}/{p.name.port or '-'}"
    svc, svl, ext = f"svc-{base}", f"svl-{base}", f"ext-{base}"
    masq = masquerade_rule(node, f)

    def ep_names(e: EndpointInfo) -> tuple[str, str]:
        eh = _hash(str(p.name) + p.protocol + e.address)
        return f"sep-{h}-{eh}", f"aff-{h}-{eh}"

    for e in plan.hairpin:
        chain, aff = ep_names(e)
        sets[aff] = f"set {aff} {{ type {f.addr_type} ; flags dynamic,timeout ; timeout {p.affinity_seconds}s ; }}"
        dnat = f"dnat {ip} to {e.ip}:{e.port}" if ip == "ip" else f"dnat {ip} to [{e.ip}]:{e.port}"
        chains[chain] = (f"update @{aff} {{ {ip} saddr }}", f"meta l4proto {p.protocol.lower()} {dnat}")

    def choose(name: str, endpoints, internal: bool) -> None:
        rules = []
        if internal and masq:
            rules.append(f"{ip} daddr {p.cluster_ip} {masq}")
        for e in endpoints:
            chain, aff = ep_names(e)
            rules.append(f"{ip} saddr @{aff} goto {chain}")
        vmap = ", ".join(f"{i} : goto {ep_names(e)[0]}" for i, e in enumerate(endpoints))
        rules.append(f"numgen random mod {len(endpoints)} vmap {{ {vmap} }}")
        chains[name] = tuple(rules)

    cluster_chain = svc if plan.cluster_set else None
    local_chain = svl if plan.local_set else None
    internal_chain = (local_chain if plan.internal_local else cluster_chain) if plan.internal else None
    if cluster_chain:
        choose(svc, plan.cluster_set, internal_chain == svc)
    if local_chain:
        choose(svl, plan.local_set, internal_chain == svl)
    if internal_chain:
        elements[("service-ips", ip_keys["internal"][0], f"goto {internal_chain}")] = None
    external_chain = (local_chain if plan.external_local else cluster_chain) if plan.external else None
    sc = plan.short_circuit
    if not (ip_keys["external"] or np_key) or not (external_chain or (sc and sc.endpoints)):
        return
    rules = []
    if sc is not None and sc.endpoints and cluster_chain:
        rules += [f"{ip} saddr {sc.pod_cidr} goto {cluster_chain}"] if sc.pod_cidr else []
        rules += ["fib saddr type local jump mark-for-masquerade", f"fib saddr type local goto {cluster_chain}"]
    if external_chain:
        rules += ["jump mark-for-masquerade"] if plan.masquerade_external else []
        rules.append(f"goto {external_chain}")
    chains[ext] = tuple(rules)
    for k in ip_keys["external"]:
        elements[("service-ips", k, f"goto {ext}")] = None
    if np_key:
        elements[("service-nodeports", np_key, f"goto {ext}")] = None
