"""What one service port contributes to podnet's nftables table, as data (no text, no kernel).

A contribution is a set of map elements (map, key, value) and the chains and sets it needs.
Picker chains (`int-N`, `ext-N`, …) are shared by every service port with the same kind and
endpoint count; they are named by that and defined by `picker_rules`, so a contribution only
names them. Chains and sets of session-affinity Services are the service port's own.

Which endpoints, which masquerading, which verdict when there are none: the same decisions as
the iptables renderer (proxy/iptables/render.py), with kube-proxy's nftables-mode differences:
node ports are not served on loopback addresses, an unknown port of a live cluster IP is
rejected and a service-CIDR address no Service holds is dropped (layout.fixed_chains).
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass, field

from proxy.model import EndpointInfo, NodeContext, ServicePortModel
from proxy.nftables.layout import Family

Element = tuple[str, str, str]  # (map or set, key, value; "" for a set)


@dataclass(frozen=True)
class Contribution:
    elements: frozenset[Element] = frozenset()
    chains: dict[str, tuple[str, ...]] = field(default_factory=dict)  # own chains: name -> rules
    pickers: frozenset[str] = frozenset()  # shared picker chains used
    sets: dict[str, str] = field(default_factory=dict)  # own sets: name -> `set …` body


def _hash(text: str) -> str:
    return base64.b32encode(hashlib.sha256(text.encode()).digest()).decode()[:8]


def _ep(e: EndpointInfo, f: Family) -> str:
    return f"{e.ip} . {e.port}" if f.name == "ip" else f"[{e.ip}] . {e.port}"


def masquerade_rule(node: NodeContext, f: Family) -> str | None:
    """Off-cluster traffic to a cluster IP is masqueraded (all of it with --masquerade-all)."""
    if node.masquerade_all:
        return "jump mark-for-masquerade"
    if node.cluster_cidrs:
        return f"{f.name} saddr != {node.cluster_cidrs[0]} jump mark-for-masquerade"
    return None


def picker(kind: str, proto: str, n: int, np: bool = False) -> str:
    """The shared chain that picks one of n endpoints: [np-]{int,ext,extl,pickc}-PROTO-N."""
    return f"{'np-' if np else ''}{kind}-{proto}-{n}"


def picker_rules(name: str, node: NodeContext, f: Family) -> tuple[str, ...]:
    """The rules of a shared picker chain, from its name (see `picker`)."""
    np = name.startswith("np-")
    kind, proto, n = name.removeprefix("np-").rsplit("-", 2)
    ip = f.name
    prefix = "np-" if np else ""
    slot_key = "th dport" if np else f"{ip} daddr . th dport"
    slots = f"{prefix}slots-cluster-{proto}" if kind == "pickc" else f"{prefix}slots-{proto}"
    dnat = f"meta l4proto {proto} dnat {ip} to {slot_key} . numgen random mod {n} map @{slots}"
    if kind == "int":
        masq = masquerade_rule(node, f)
        return (masq, dnat) if masq else (dnat,)
    if kind == "ext":
        return ("jump mark-for-masquerade", dnat)
    if kind == "extl":
        # pods and the node itself reach external destinations as if from outside and back in
        # through a load balancer: subject to neither traffic policy, so all cluster endpoints
        key = "meta l4proto . th dport" if np else f"{ip} daddr . meta l4proto . th dport"
        to_cluster = f"{key} vmap @{prefix}cluster-dispatch"
        pods = [f"{ip} saddr {node.cluster_cidrs[0]} {to_cluster}"] if node.cluster_cidrs else []
        return (
            *pods,
            "fib saddr type local jump mark-for-masquerade",
            f"fib saddr type local {to_cluster}",
            dnat,
        )
    if kind == "pickc":
        return (dnat,)
    raise ValueError(f"not a picker chain: {name}")


def port_key(p: ServicePortModel, addr: str, f: Family) -> str:
    return f"{addr} . {p.protocol.lower()} . {p.port}"


def contribution(p: ServicePortModel, node: NodeContext, f: Family) -> Contribution:
    proto = p.protocol.lower()
    elements: set[Element] = set()
    pickers: set[str] = set()
    chains: dict[str, tuple[str, ...]] = {}
    sets: dict[str, str] = {}

    has_endpoints = p.any_usable
    unusable = "goto reject-chain" if not has_endpoints else "drop"
    internal = p.internal_endpoints
    external = p.external_endpoints
    cluster = p.cluster_endpoints
    uses_ext = has_endpoints and p.externally_reachable

    elements.add(("cluster-ips", p.cluster_ip, ""))
    ip_keys = {"internal": [port_key(p, p.cluster_ip, f)]}
    external_addrs = (*p.external_ips, *p.load_balancer_ips)
    ip_keys["external"] = [port_key(p, a, f) for a in external_addrs]
    np_key = f"{proto} . {p.node_port}" if p.node_port else None

    if not internal:
        elements.add(("no-endpoint-services", ip_keys["internal"][0], unusable))
    if not external:
        for k in ip_keys["external"]:
            elements.add(("no-endpoint-services", k, unusable))
        if np_key:
            elements.add(("no-endpoint-nodeports", np_key, unusable))
    for a in p.load_balancer_ips if p.load_balancer_source_ranges else ():
        k = port_key(p, a, f)
        elements.add(("firewall-ips", k, ""))
        elements |= {("firewall-allow", f"{k} . {cidr}", "") for cidr in p.load_balancer_source_ranges}
    for e in p.all_reachable:
        elements.add(("hairpin", f"{e.ip} . {e.ip}", ""))

    if p.affinity_seconds:
        _affinity(p, node, f, elements, chains, sets, ip_keys, np_key if uses_ext else None)
        return Contribution(frozenset(elements), chains, frozenset(pickers), sets)

    def slots(table: str, key: str, endpoints) -> None:
        for i, e in enumerate(endpoints):
            elements.add((table, f"{key} . {i}", _ep(e, f)))

    if internal:
        k = ip_keys["internal"][0]
        chain = picker("int", proto, len(internal))
        pickers.add(chain)
        elements.add(("service-ips", k, f"goto {chain}"))
        slots(f"slots-{proto}", f"{p.cluster_ip} . {p.port}", internal)
    if uses_ext and external:
        kind = "extl" if p.external_local else "ext"
        targets = [(k, f"{a} . {p.port}", False) for k, a in zip(ip_keys["external"], external_addrs, strict=True)]
        if np_key:
            targets.append((np_key, str(p.node_port), True))
        for k, slot_key, np in targets:
            prefix = "np-" if np else ""
            chain = picker(kind, proto, len(external), np)
            pickers.add(chain)
            elements.add(("service-nodeports" if np else "service-ips", k, f"goto {chain}"))
            slots(f"{prefix}slots-{proto}", slot_key, external)
            if kind == "extl" and cluster:
                chain = picker("pickc", proto, len(cluster), np)
                pickers.add(chain)
                elements.add((f"{prefix}cluster-dispatch", k, f"goto {chain}"))
                slots(f"{prefix}slots-cluster-{proto}", slot_key, cluster)
    return Contribution(frozenset(elements), chains, frozenset(pickers), sets)


def _affinity(p, node, f, elements, chains, sets, ip_keys, np_key) -> None:
    """kube-proxy's layout for a session-affinity service port: chains svc- (cluster endpoints),
    svl- (local endpoints), ext- (external traffic policy) and one per endpoint that records
    the client in the endpoint's dynamic set and DNATs to it."""
    ip = f.name
    h = _hash(str(p.name) + p.protocol)
    base = f"{h}-{p.name.namespace}/{p.name.name}/{p.protocol.lower()}/{p.name.port or '-'}"
    svc, svl, ext = f"svc-{base}", f"svl-{base}", f"ext-{base}"
    masq = masquerade_rule(node, f)

    def ep_names(e: EndpointInfo) -> tuple[str, str]:
        eh = _hash(str(p.name) + p.protocol + e.address)
        return f"sep-{h}-{eh}", f"aff-{h}-{eh}"

    for e in p.all_reachable:
        chain, aff = ep_names(e)
        sets[aff] = f"set {aff} {{ type {f.addr_type} ; flags dynamic,timeout ; timeout {p.affinity_seconds}s ; }}"
        dnat = f"dnat {ip} to {e.ip}:{e.port}" if ip == "ip" else f"dnat {ip} to [{e.ip}]:{e.port}"
        chains[chain] = (f"update @{aff} {{ {ip} saddr }}", f"meta l4proto {p.protocol.lower()} {dnat}")

    def picker(name: str, endpoints, internal: bool) -> None:
        rules = []
        if internal and masq:
            rules.append(f"{ip} daddr {p.cluster_ip} {masq}")
        for e in endpoints:
            chain, aff = ep_names(e)
            rules.append(f"{ip} saddr @{aff} goto {chain}")
        vmap = ", ".join(f"{i} : goto {ep_names(e)[0]}" for i, e in enumerate(endpoints))
        rules.append(f"numgen random mod {len(endpoints)} vmap {{ {vmap} }}")
        chains[name] = tuple(rules)

    cluster_chain = svc if p.uses_cluster_endpoints and p.cluster_endpoints else None
    local_chain = svl if p.uses_local_endpoints and p.local_endpoints else None
    internal_chain = local_chain if p.internal_local else cluster_chain
    if cluster_chain:
        picker(svc, p.cluster_endpoints, internal_chain == svc)
    if local_chain:
        picker(svl, p.local_endpoints, internal_chain == svl)
    if internal_chain:
        elements.add(("service-ips", ip_keys["internal"][0], f"goto {internal_chain}"))
    external_chain = local_chain if p.external_local else cluster_chain
    if not external_chain or not (ip_keys["external"] or np_key):
        return
    rules = []
    if p.external_local:
        if cluster_chain:
            rules += [f"{ip} saddr {c} goto {cluster_chain}" for c in node.cluster_cidrs[:1]]
            rules += ["fib saddr type local jump mark-for-masquerade", f"fib saddr type local goto {cluster_chain}"]
        rules.append(f"goto {local_chain}")
    else:
        rules += ["jump mark-for-masquerade", f"goto {cluster_chain}"]
    chains[ext] = tuple(rules)
    for k in ip_keys["external"]:
        elements.add(("service-ips", k, f"goto {ext}"))
    if np_key:
        elements.add(("service-nodeports", np_key, f"goto {ext}"))
