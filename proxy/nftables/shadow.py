"""The shadow copy of podnet's nftables table and the diff that plans a transaction from it.

The shadow holds what the kernel holds once the last transaction applied: every map's
elements, every chain's rules, every set. Contributions of service ports are reference
counted (a cluster IP is shared by the ports of its Service, a hairpin pair by every Service
an endpoint backs, a picker chain by every Service with the same endpoint count), so a sync
touching one service port only compares that port's old and new contributions and emits the
elements and chains whose presence or value changed.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from proxy.model import NodeContext, ProxyModel, ServicePortName
from proxy.nftables import layout
from proxy.nftables.render import Contribution, contribution, picker_rules
from proxy.nftables.transaction import Transaction


@dataclass
class Shadow:
    ports: dict[ServicePortName, Contribution] = field(default_factory=dict)
    wanted: dict[tuple[str, str], Counter] = field(default_factory=dict)  # (map, key) -> {value: refs}
    elements: dict[tuple[str, str], str] = field(default_factory=dict)  # in the kernel: (map, key) -> value
    chain_refs: Counter = field(default_factory=Counter)  # chain -> contributions needing it
    chains: dict[str, tuple[str, ...]] = field(default_factory=dict)  # in the kernel
    set_refs: Counter = field(default_factory=Counter)
    sets: dict[str, str] = field(default_factory=dict)  # own (affinity) sets in the kernel
    node: NodeContext | None = None  # what the fixed chains were rendered for
    touched: list = field(default_factory=list)  # (old, new) contributions not yet emitted


def nodeport_match(node: NodeContext, f: layout.Family) -> str:
    if node.nodeport_on_all_addresses():
        return f"fib daddr type local {f.name} daddr != {f.loopback}"
    return f"{f.name} daddr @nodeport-ips"


def node_elements(node: NodeContext, f: layout.Family) -> set[tuple[str, str, str]]:
    """Elements that come from the node, not from Services."""
    from proxy.iptables.render import nodeport_ips

    out = {("service-cidrs", c, "") for c in node.service_cidrs if (":" in c) == (f.name == "ip6")}
    if not node.nodeport_on_all_addresses():
        out |= {("nodeport-ips", ip, "") for ip in nodeport_ips(node) if not ip.startswith("127.")}
    return out


NODE = ServicePortName("", "", "", "")  # the node's own contribution, tracked like a port's


def plan(model: ProxyModel, changed: set[ServicePortName], full: bool, old: Shadow | None, f) -> Transaction:
    """The transaction taking the kernel from `old` (None: unknown) to `model`."""
    recreate = old is None
    new = Shadow() if old is None else old  # updated in place: the backend drops it if the apply fails
    tx = Transaction(full=full, table=f.table, recreate=recreate)
    node = model.node
    if recreate:
        tx.declare.append(f'add table {f.table} {{ comment "podnet service proxy" ; }}')
        tx.declare += [f"add {body}" for body in _prefix(layout.maps(f), f)]
        for bc in layout.BASE_CHAINS:
            tx.declare.append(
                f"add chain {f.table} {bc.name} {{ type {bc.kind} hook {bc.hook} priority {bc.priority} ; }}"
            )
            tx.rules += [f"add rule {f.table} {bc.name} {r}" for r in bc.rules]
    if recreate or new.node != node:
        fixed = layout.fixed_chains(f, nodeport_match(node, f))
        pickers = {c for c in new.chains if c not in fixed and new.chain_refs[c] and _is_picker(c)}
        for name, rules in fixed.items():
            _set_chain(tx, new, name, rules)
        for name in sorted(pickers):
            _set_chain(tx, new, name, picker_rules(name, node, f))  # masquerading depends on the node
        _replace(new, NODE, Contribution(frozenset(node_elements(node, f))))
        new.node = node
    todo = model.ports.keys() if (full or recreate) else changed
    for name in set(todo) | ({n for n in new.ports if n not in model.ports and n != NODE} if full else set()):
        p = model.ports.get(name)
        _replace(new, name, contribution(p, node, f) if p is not None else None)
    _emit(tx, new, node, f)
    tx.counts = {"podnet": len(new.elements) + sum(len(r) for r in new.chains.values())}
    tx.state = new
    return tx


def _prefix(bodies: dict[str, str], f) -> list[str]:
    # "map NAME { … }" -> "map ip podnet NAME { … }"
    out = []
    for body in bodies.values():
        kind, _, rest = body.partition(" ")
        out.append(f"{kind} {f.table} {rest}")
    return out


def _is_picker(name: str) -> bool:
    parts = name.removeprefix("np-").split("-")
    return len(parts) == 3 and parts[0] in ("int", "ext", "extl", "pickc") and parts[2].isdigit()


def _set_chain(tx: Transaction, s: Shadow, name: str, rules: tuple[str, ...]) -> None:
    """Make the chain hold exactly `rules` (a chain not in the kernel is created)."""
    if name in s.chains and s.chains[name] == rules:
        return
    if name in s.chains:
        tx.rules.append(f"flush chain {tx.table} {name}")
    else:
        tx.declare.append(f"add chain {tx.table} {name}")
    tx.rules += [f"add rule {tx.table} {name} {r}" for r in rules]
    s.chains[name] = rules


def _replace(s: Shadow, name: ServicePortName, c: Contribution | None) -> None:
    """Swap a port's contribution in the reference counts (not yet in the kernel view)."""
    old = s.ports.pop(name, None)
    if old is not None:
        for m, k, v in old.elements:
            s.wanted[(m, k)][v] -= 1
        s.chain_refs.subtract(old.pickers)
        s.chain_refs.subtract(old.chains.keys())
        s.set_refs.subtract(old.sets.keys())
    if c is not None:
        s.ports[name] = c
        for m, k, v in c.elements:
            s.wanted.setdefault((m, k), Counter())[v] += 1
        s.chain_refs.update(c.pickers)
        s.chain_refs.update(c.chains.keys())
        s.set_refs.update(c.sets.keys())
    s.touched.append((old, c))


def _emit(tx: Transaction, new: Shadow, node: NodeContext, f) -> None:
    """Turn the touched contributions into the kernel changes, updating `new`'s kernel view."""
    touched, new.touched = new.touched, []
    keys: set[tuple[str, str]] = set()
    chain_names: set[str] = set()
    set_names: set[str] = set()
    own_chains: dict[str, tuple[str, ...]] = {}
    own_sets: dict[str, str] = {}
    for before, after in touched:
        for c in (before, after):
            if c is None:
                continue
            keys |= {(m, k) for m, k, _ in c.elements}
            chain_names |= c.pickers | c.chains.keys()
            set_names |= c.sets.keys()
        if after is not None:
            own_chains.update(after.chains)
            own_sets.update(after.sets)
    # sets and chains first: elements and rules name them
    for s in sorted(set_names):
        if new.set_refs[s] > 0 and s not in new.sets:
            tx.declare.append(f"add set {tx.table} {own_sets[s].removeprefix('set ')}")
            new.sets[s] = own_sets[s]
    for c in sorted(chain_names):
        if new.chain_refs[c] > 0:
            rules = own_chains[c] if c in own_chains else picker_rules(c, node, f)
            if c not in own_chains and c in new.chains:
                continue  # a picker chain already there
            _set_chain(tx, new, c, rules)
    for m, k in sorted(keys):
        values = new.wanted.get((m, k), Counter())
        have = new.elements.get((m, k))
        # the value in the kernel stays while anyone still wants it (two Services claiming
        # one address and port: the first keeps it, as kube-proxy's maps do)
        live = sorted(v for v, n in values.items() if n > 0)
        want = have if have in live else (live[0] if live else None)
        if not live:
            new.wanted.pop((m, k), None)
        if want == have:
            continue
        if have is not None:
            tx.element_deletes[m].append(k)
            del new.elements[(m, k)]
        if want is not None:
            tx.element_adds[m].append((k, want))
            new.elements[(m, k)] = want
    for c in sorted(chain_names):
        if new.chain_refs[c] <= 0 and c in new.chains:
            tx.delete_chains.append(c)
            del new.chains[c]
            del new.chain_refs[c]
    for s in sorted(set_names):
        if new.set_refs[s] <= 0 and s in new.sets:
            tx.delete_sets.append(s)
            del new.sets[s]
            del new.set_refs[s]


__all__ = ["Shadow", "plan"]
