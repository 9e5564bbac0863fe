"""The shadow copy of podnet's nftables table and the diff that plans a transaction from it.

The shadow holds what the kernel holds once the last transaction applied: every map's
elements, every chain's rules, every set. Contributions of service ports are reference
counted (a cluster IP is shared by the ports of its Service, a hairpin pair by every Service
an endpoint backs, a picker chain by every Service of the same kind and protocol, a count set
by every Service with the same endpoint count), so a sync touching one service port only
compares that port's old and new contributions and emits the elements, sets and chains whose
presence or value changed. A picker chain's rules are rewritten only when a count set comes or
goes (the first Service with N endpoints arrives, the last one leaves).
"""

from __future__ import annotations

import functools
import itertools
import operator
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from proxy.model import NodeContext, ProxyModel, ServicePortModel, ServicePortName
from proxy.nftables import layout
from proxy.nftables.render import (
    Contribution,
    contribution,
    count_set_body,
    is_picker,
    picker_rules,
    split_count_set,
)
from proxy.nftables.transaction import Transaction
from proxy.plan import plan_node
from proxy.ruletext import NFT_COMMENT_MAX, comment


@dataclass
class Shadow:
    ports: dict[ServicePortName, Contribution] = field(default_factory=dict)
    wanted: dict[tuple[str, str], dict[str, int]] = field(default_factory=dict)  # (map, key) -> {value: refs}
    # what a rebuild counted, (map, key, value) -> refs, each key with the one value the kernel
    # has; moved into `wanted` key by key as syncs touch them (see _claims)
    base: Counter[tuple[str, str, str]] = field(default_factory=Counter)
    # a rebuild in which each element was written by one service port only (the usual case,
    # not counted: 200,000 elements in a big cluster): a key in `elements` and not in `wanted`
    # is then claimed once, with the value it has
    base_once: bool = False
    elements: dict[tuple[str, str], str] = field(default_factory=dict)  # in the kernel: (map, key) -> value
    chain_refs: dict[str, int] = field(default_factory=dict)  # chain -> contributions needing it
    chains: dict[str, tuple[str, ...]] = field(default_factory=dict)  # in the kernel
    own_chains: dict[str, tuple[str, ...]] = field(default_factory=dict)  # wanted chains of affinity ports
    set_refs: dict[str, int] = field(default_factory=dict)
    sets: dict[str, str] = field(default_factory=dict)  # own (affinity) sets in the kernel
    own_sets: dict[str, str] = field(default_factory=dict)
    count_refs: dict[str, int] = field(default_factory=dict)  # count set -> contributions in it
    counts: dict[str, set[int]] = field(default_factory=dict)  # in the kernel: picker -> its count sets' N
    node: NodeContext | None = None  # what the fixed chains were rendered for
    # what contributions touched since the last emit
    dirty: set[tuple[str, str]] = field(default_factory=set)
    dirty_chains: set[str] = field(default_factory=set)
    dirty_sets: set[str] = field(default_factory=set)
    dirty_counts: set[str] = field(default_factory=set)


def nodeport_match(node: NodeContext, f: layout.Family) -> str:
    if plan_node(node, "nftables").nodeport_addresses is None:
        return f"fib daddr type local {f.name} daddr != {f.loopback}"
    return f"{f.name} daddr @nodeport-ips"


def node_elements(node: NodeContext, f: layout.Family) -> set[tuple[str, str, str]]:
    """Elements that come from the node's plan, not from Services."""
    where = plan_node(node, "nftables")
    out = {("service-cidrs", c, "") for c in where.drop_unallocated}
    out |= {("nodeport-ips", a, "") for a in where.nodeport_addresses or ()}
    return out


NODE = ServicePortName("", "", "", "")  # the node's own contribution, tracked like a port's


def plan(model: ProxyModel, changed: set[ServicePortName], full: bool, old: Shadow | None, f) -> Transaction:
    """The transaction taking the kernel from `old` (None: unknown) to `model`."""
    if old is None:
        return rebuild(model, model.ports.values(), f)
    new = old  # updated in place: the backend drops it if the apply fails
    tx = Transaction(full=full, table=f.table)
    node = model.node
    if new.node != node:
        _node_changed(tx, new, node, f)
    tx.state = new
    todo = model.ports.keys() if full else changed
    for port in set(todo) | ({n for n in new.ports if n not in model.ports and n != NODE} if full else set()):
        p = model.ports.get(port)
        _replace(new, port, contribution(p, node, f) if p is not None else None)
    _emit(tx, new, node, f)
    _count(tx, new)
    return tx


def rebuild(model: ProxyModel, ports: Iterable[ServicePortModel], f) -> Transaction:
    """The transaction that makes the table from nothing (the kernel's is unknown): every
    service port of `ports`, read as the transaction is, so the model may still be being built
    while nft parses the first service ports. Nothing to delete: the table is rebuilt in
    batches of service ports, each batch's chains before its elements."""
    new = Shadow()
    tx = Transaction(full=True, table=f.table, recreate=True, state=new)
    tx.declare.append(f"add table {f.table} {{ comment {comment('podnet service proxy', NFT_COMMENT_MAX)} ; }}")
    tx.declare += [f"add {body}" for body in _prefix(layout.maps(f), f)]
    for bc in layout.BASE_CHAINS:
        tx.declare.append(f"add chain {f.table} {bc.name} {{ type {bc.kind} hook {bc.hook} priority {bc.priority} ; }}")
        tx.rules += [f"add rule {f.table} {bc.name} {r}" for r in bc.rules]
    _node_changed(tx, new, model.node, f)
    names: list[ServicePortName] = []
    made: list[Contribution] = []
    tx.stream = _batches(tx, model.node, iter(ports), new, f, names, made)
    tx.finish = functools.partial(_finish, tx, new, names, made)
    return tx


def _node_changed(tx: Transaction, new: Shadow, node: NodeContext, f) -> None:
    """The fixed chains and the node's own elements, for a new node context."""
    fixed = layout.fixed_chains(f, nodeport_match(node, f))
    pickers = {c for c in new.chains if c not in fixed and new.chain_refs.get(c, 0) > 0 and is_picker(c)}
    for name, rules in fixed.items():
        _set_chain(tx, new, name, rules)
    for name in sorted(pickers):  # masquerading depends on the node
        _set_chain(tx, new, name, picker_rules(name, new.counts.get(name, ()), node, f))
    _replace(new, NODE, Contribution(tuple(sorted(node_elements(node, f)))))
    new.node = node


BATCH = 100  # service ports per streamed batch: nft starts parsing early


def _batches(
    tx: Transaction,
    node: NodeContext,
    ports: Iterator[ServicePortModel],
    new: Shadow,
    f,
    names: list[ServicePortName],
    made: list[Contribution],
) -> Iterator[str]:
    """A rebuild, written straight from the contributions batch by batch while nft parses
    the batches before (the table is empty: nothing to compare, every element is new); the
    service ports and their contributions are recorded in `names` and `made`, from which the
    shadow's reference counts are built once the last batch is written (tx.finish), while nft
    evaluates and commits."""
    yield _emitted(tx, new, node, f)  # the node's own elements
    counts: dict[str, set[int]] = {}
    declared: set[str] = set()  # count sets
    once = True  # every element written by one service port so far
    while batch := list(itertools.islice(ports, BATCH)):
        names += (p.name for p in batch)
        contributions = [contribution(p, node, f) for p in batch]
        made += contributions
        text, batch_once = _written(tx.table, contributions, new, counts, declared, f)
        once = once and batch_once
        yield text
    new.base_once = once
    # the pickers' rules last: they name every count set, and no element needs them
    part = Transaction(full=True, table=tx.table)
    for chain in sorted(set().union(*(c.pickers for c in made))):  # each declared empty by its first batch
        _set_chain(part, new, chain, picker_rules(chain, counts.get(chain, ()), node, f))
    new.counts = counts
    yield part.text()


def _written(
    table: str, batch: list[Contribution], new: Shadow, counts: dict[str, set[int]], declared: set[str], f
) -> tuple[str, bool]:
    """One batch of a rebuild as text: its new sets and chains, then its elements, each key
    once (the first service port claiming a key keeps it, as kube-proxy's maps do); and
    whether each of its elements is new and came from one service port only."""
    declare: list[str] = []
    rules: list[str] = []
    chains, sets = new.chains, new.sets
    for c in batch:
        for name in c.pickers:
            if name not in chains:
                chains[name] = ()
                declare.append(f"add chain {table} {name}")
        for name in c.counts:
            if name not in declared:
                declared.add(name)
                chain, n = split_count_set(name)
                counts.setdefault(chain, set()).add(n)
                declare.append(f"add set {table} {count_set_body(name, f).removeprefix('set ')}")
        for name, body in c.sets.items():
            if name not in sets:
                sets[name] = body
                declare.append(f"add set {table} {body.removeprefix('set ')}")
        for name, own in c.chains.items():
            if name not in chains:
                chains[name] = own
                declare.append(f"add chain {table} {name}")
                rules += [f"add rule {table} {name} {r}" for r in own]
    lines, once = _element_lines(table, batch, new.elements)
    out = declare + rules + lines
    return ("\n".join(out) + "\n" if out else ""), once


_MAP, _KEY, _VALUE, _MAP_KEY, _KEY_VALUE = (
    operator.itemgetter(0),
    operator.itemgetter(1),
    operator.itemgetter(2),
    operator.itemgetter(0, 1),
    operator.itemgetter(1, 2),
)


def _element_lines(
    table: str, batch: list[Contribution], elements: dict[tuple[str, str], str]
) -> tuple[list[str], bool]:
    """The `add element` lines of a batch, one per map, recording them in `elements`. A
    rebuild writes some 200,000 elements, so the usual case is done by C loops (dict, map,
    sort, join): every (map, key) new and claimed with one value. An element several ports
    share with the same value (a Service's cluster IP, a hairpin pair) is written once. Also
    says whether each element came from one service port only (none shared)."""
    unique = list(dict.fromkeys(itertools.chain.from_iterable(c.elements for c in batch)))
    fresh = dict(zip(map(_MAP_KEY, unique), map(_VALUE, unique), strict=True))
    if len(fresh) == len(unique) and elements.keys().isdisjoint(fresh):
        elements.update(fresh)
        first = dict.fromkeys(map(_MAP, unique))  # the maps in the order they came
        unique.sort(key=_MAP)  # stable: each map's elements stay in the order they came
        lines = {}
        for m, group in itertools.groupby(unique, _MAP):
            items = list(group)
            body = ", ".join(map(" : ".join, map(_KEY_VALUE, items))) if items[0][2] else ", ".join(map(_KEY, items))
            lines[m] = f"add element {table} {m} {{ {body} }}"
        return [lines[m] for m in first], len(unique) == sum(len(c.elements) for c in batch)
    adds: dict[str, list[str]] = {}  # some key claimed twice, or already written
    for m, k, v in unique:
        if (m, k) not in elements:
            elements[m, k] = v
            adds.setdefault(m, []).append(f"{k} : {v}" if v else k)
    return [f"add element {table} {m} {{ {', '.join(items)} }}" for m, items in adds.items()], False


def _finish(tx: Transaction, new: Shadow, names: list[ServicePortName], made: list[Contribution]) -> None:
    _index(new, names, made)
    _count(tx, new)


def _index(new: Shadow, names: list[ServicePortName], made: list[Contribution]) -> None:
    """The reference counts of a rebuilt table (the kernel's view, `elements`, `chains` and
    `sets`, was recorded as it was written)."""
    new.ports.update(zip(names, made, strict=True))
    if not new.base_once:  # else each key written is claimed once: nothing to count (see _claims)
        _count_elements(new, made)
    for refs, names_of in (
        (new.chain_refs, lambda c: (*c.pickers, *c.chains)),
        (new.count_refs, lambda c: c.counts),
        (new.set_refs, lambda c: c.sets),
    ):
        for n, times in Counter(itertools.chain.from_iterable(names_of(c) for c in made)).items():
            refs[n] = refs.get(n, 0) + times
    for c in made:
        if c.chains or c.sets:
            new.own_chains.update(c.chains)
            new.own_sets.update(c.sets)


def _count_elements(new: Shadow, made: list[Contribution]) -> None:
    counted = Counter(itertools.chain.from_iterable(c.elements for c in made))  # counted in C
    # `elements` holds the node's keys (all in `wanted`) and one entry per key written
    if len(counted) == len(new.elements) - len(new.wanted):
        new.base = counted  # every key claimed with one value, not the node's: the usual case
    else:  # some key with two values (two Services claiming one address and port)
        for (m, k, v), n in counted.items():
            values = new.wanted.setdefault((m, k), {})
            values[v] = values.get(v, 0) + n


def _emitted(tx: Transaction, new: Shadow, node: NodeContext, f) -> str:
    part = Transaction(full=True, table=tx.table)
    _emit(part, new, node, f)
    return part.text()


def _count(tx: Transaction, s: Shadow) -> None:
    tx.counts = {"podnet": len(s.elements) + sum(len(r) for r in s.chains.values())}


def _prefix(bodies: dict[str, str], f) -> list[str]:
    # "map NAME { … }" -> "map ip podnet NAME { … }"
    out = []
    for body in bodies.values():
        kind, _, rest = body.partition(" ")
        out.append(f"{kind} {f.table} {rest}")
    return out


def _set_chain(tx: Transaction, s: Shadow, name: str, rules: tuple[str, ...]) -> None:
    """Make the chain hold exactly `rules` (a chain not in the kernel is created)."""
    have = s.chains.get(name)
    if have == rules:
        return
    if have is not None and rules[: len(have)] == have:  # only rules to append (a new count set)
        tx.rules += [f"add rule {tx.table} {name} {r}" for r in rules[len(have) :]]
        s.chains[name] = rules
        return
    if have is not None:
        tx.rules.append(f"flush chain {tx.table} {name}")
    else:
        tx.declare.append(f"add chain {tx.table} {name}")
    tx.rules += [f"add rule {tx.table} {name} {r}" for r in rules]
    s.chains[name] = rules


def _replace(s: Shadow, name: ServicePortName, c: Contribution | None) -> None:
    """Swap a port's contribution in the reference counts (not yet in the kernel view)."""
    old = s.ports.pop(name, None)
    wanted, dirty = s.wanted, s.dirty
    if old is not None:
        for m, k, v in old.elements:
            key = (m, k)
            values = wanted.get(key)
            if values is None:
                values = _claims(s, key)
                assert values is not None, key  # old claims it
            values[v] -= 1
            dirty.add(key)
        for n in (*old.pickers, *old.chains):
            s.chain_refs[n] -= 1
        for n in old.sets:
            s.set_refs[n] -= 1
        for n in old.counts:
            s.count_refs[n] -= 1
        s.dirty_chains.update(old.pickers, old.chains)
        s.dirty_sets.update(old.sets)
        s.dirty_counts.update(old.counts)
    if c is not None:
        s.ports[name] = c
        for m, k, v in c.elements:
            key = (m, k)
            values = wanted.get(key)
            if values is None and (values := _claims(s, key)) is None:
                wanted[key] = {v: 1}
            else:
                values[v] = values.get(v, 0) + 1
            dirty.add(key)
        for n in (*c.pickers, *c.chains):
            s.chain_refs[n] = s.chain_refs.get(n, 0) + 1
        for n in c.sets:
            s.set_refs[n] = s.set_refs.get(n, 0) + 1
        for n in c.counts:
            s.count_refs[n] = s.count_refs.get(n, 0) + 1
        s.dirty_chains.update(c.pickers, c.chains)
        s.dirty_sets.update(c.sets)
        s.dirty_counts.update(c.counts)
        s.own_chains.update(c.chains)
        s.own_sets.update(c.sets)


def _claims(s: Shadow, key: tuple[str, str]) -> dict[str, int] | None:
    """The values wanted for `key` with their reference counts, moved from what the last
    rebuild counted (None: nobody wants it)."""
    values = s.wanted.get(key)
    if values is None and (s.base or s.base_once):
        v = s.elements.get(key)
        if v is not None and (n := 1 if s.base_once else s.base.pop((*key, v), 0)):
            values = s.wanted[key] = {v: n}
    return values


def _emit(tx: Transaction, new: Shadow, node: NodeContext, f) -> None:
    """Turn what the touched contributions changed into kernel changes, updating the shadow's
    view of the kernel."""
    chain_names, new.dirty_chains = new.dirty_chains, set()
    set_names, new.dirty_sets = new.dirty_sets, set()
    count_names, new.dirty_counts = new.dirty_counts, set()
    keys, new.dirty = new.dirty, set()
    # sets and chains first: elements and rules name them
    for s in sorted(set_names):
        if new.set_refs.get(s, 0) > 0 and s not in new.sets:
            tx.declare.append(f"add set {tx.table} {new.own_sets[s].removeprefix('set ')}")
            new.sets[s] = new.own_sets[s]
    doomed_counts = []
    for s in sorted(count_names):
        chain, n = split_count_set(s)
        ns = new.counts.setdefault(chain, set())
        if new.count_refs.get(s, 0) > 0 and n not in ns:
            tx.declare.append(f"add set {tx.table} {count_set_body(s, f).removeprefix('set ')}")
            ns.add(n)
            chain_names.add(chain)
        elif new.count_refs.get(s, 0) <= 0:
            new.count_refs.pop(s, None)
            if n in ns:  # deleted once its picker's rule no longer names it
                doomed_counts.append(s)
                ns.discard(n)
                chain_names.add(chain)
        if not ns:
            del new.counts[chain]
    for c in sorted(chain_names):
        if new.chain_refs.get(c, 0) > 0:
            if c in new.own_chains:
                _set_chain(tx, new, c, new.own_chains[c])
            else:  # a picker chain, the same for every user
                _set_chain(tx, new, c, picker_rules(c, new.counts.get(c, ()), node, f))
    wanted, elements = new.wanted, new.elements
    deletes, adds = tx.element_deletes, tx.element_adds
    for key in keys:
        values = wanted.get(key)
        have = elements.get(key)
        want: str | None
        if values is not None and len(values) == 1:
            ((want, n),) = values.items()
            if n <= 0:
                want = None
        else:
            # the value in the kernel stays while anyone still wants it (two Services claiming
            # one address and port: the first keeps it, as kube-proxy's maps do)
            live = sorted(v for v, n in (values or {}).items() if n > 0)
            want = have if have in live else (live[0] if live else None)
        if want is None:
            wanted.pop(key, None)
        elif values is not None and len(values) > 1:  # (values is None means want is None)
            wanted[key] = {v: n for v, n in values.items() if n > 0}
        if want == have:
            continue
        m, k = key
        if have is not None:
            deletes[m].append(k)
            del elements[key]
        if want is not None:
            adds[m].append((k, want))
            elements[key] = want
    for c in sorted(chain_names):
        if new.chain_refs.get(c, 0) <= 0:
            new.chain_refs.pop(c, None)
            new.own_chains.pop(c, None)
            if c in new.chains:
                tx.delete_chains.append(c)
                del new.chains[c]
    for s in sorted(set_names):
        if new.set_refs.get(s, 0) <= 0:
            new.set_refs.pop(s, None)
            new.own_sets.pop(s, None)
            if s in new.sets:
                tx.delete_sets.append(s)
                del new.sets[s]
    tx.delete_sets += doomed_counts


__all__ = ["Shadow", "plan", "rebuild"]
