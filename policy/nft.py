"""PodRules -> one nftables table of podnet's own, `inet podnet-policy`, the whole desired state
in one `nft -f` transaction (the table made, deleted and written again: the kernel swaps it in
atomically, so no packet meets a half-written policy).

  chain forward (hook forward)   replies (ct established,related) accepted; then by
                                 destination address a jump to the pod's ingress chain, by
                                 source address a jump to its egress chain
  chain input (hook input)       pod -> this node: the egress chain of the pod sending
  chain in/NS/POD                one rule per (rule, address group, protocol): `return`, as
                                 the egress check may still follow; last, a counted drop
  chain out/NS/POD               one rule per (rule, address group, protocol): `accept`; last,
                                 a counted drop

Every rule that lets traffic through has a comment naming its policy and rule
("allow default/web-allow ingress[0]"); each final drop names what isolated the pod
("isolated (ingress) by default/deny-all"), which `podnet trace` reads. Traffic from the node itself to
its pods (kubelet's probes) leaves through the output hook, which this table leaves alone.
Nothing here touches a table that is not podnet-policy's.
"""

from __future__ import annotations

import functools
import hashlib
import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass

from policy.model import Allow, Block, PodRules, PortRange

TABLE = "inet podnet-policy"
COMMENT_MAX = 120  # nft's limit is 128 bytes
ISOLATED = "isolated "
ALLOW = "allow "
FAMILY_KEYWORD = {4: "ip", 6: "ip6"}
# neighbour discovery never waits for a policy: without it no packet of the pod moves at all
ND_TYPES = "nd-neighbor-solicit, nd-neighbor-advert, nd-router-solicit, nd-router-advert"


SET_AT = 5  # a peer list this long becomes a named set
SET_TYPE = {4: "ipv4_addr", 6: "ipv6_addr"}


@dataclass(frozen=True)
class NamedSet:
    name: str  # named for its content: chains with the same peers share it
    family: int
    elements: str


def comment(text: str) -> str:
    text = text.replace('"', "'")
    if len(text.encode()) > COMMENT_MAX:
        text = text.encode()[: COMMENT_MAX - 3].decode(errors="ignore") + "..."
    return f'comment "{text}"'


def chain_name(direction: str, rules: PodRules) -> str:
    # namespaces are DNS labels and pod names DNS subdomains: '/' keeps any two apart
    return f"{'in' if direction == 'ingress' else 'out'}/{rules.pod.namespace}/{rules.pod.name}"


def _address_groups(blocks: tuple[Block, ...] | None, family: int) -> tuple[list[str], list[NamedSet]] | None:
    """The address matches (without the `ip saddr` part) for one family, and the named sets
    they use: blocks without excepts share one set (a named one, shared by every chain that
    has the same peers, from SET_AT addresses on), each block with excepts is its own
    `CIDR` + `!= {excepts}`. None: any address."""
    if blocks is None:
        return None
    mine = [b for b in blocks if b.version == family]
    plain = ", ".join(_nft_cidr(b.cidr) for b in mine if not b.excepts)
    out, sets = [], []
    if len(mine) - sum(1 for b in mine if b.excepts) >= SET_AT:
        named = NamedSet(f"peers{family}-{hashlib.sha1(plain.encode()).hexdigest()[:16]}", family, plain)
        out.append(f"@{named.name}")
        sets.append(named)
    elif plain:
        out.append(f"{{ {plain} }}")
    out += [
        f"{_nft_cidr(b.cidr)} @EXCEPT {{ {', '.join(_nft_cidr(e) for e in b.excepts)} }}" for b in mine if b.excepts
    ]
    return out, sets


def _nft_cidr(cidr: str) -> str:
    """A single address as nft lists it (no /32 or /128); cidr is canonical already."""
    return cidr.removesuffix("/128") if ":" in cidr else cidr.removesuffix("/32")


def _port_groups(ports: tuple[PortRange, ...] | None) -> list[str] | None:
    """Protocol-and-port matches, one per protocol. None: any traffic."""
    if ports is None:
        return None
    out = []
    for proto in sorted({p.protocol for p in ports}):
        mine = [p for p in ports if p.protocol == proto]
        l4 = f"meta l4proto {proto.lower()}"
        if any(p.first is None for p in mine):
            out.append(l4)
            continue
        items = sorted({(p.first, p.last) for p in mine if p.first is not None})
        spans = ", ".join(str(a) if a == b else f"{a}-{b}" for a, b in items)
        out.append(f"{l4} th dport {{ {spans} }}")
    return out


@functools.lru_cache(maxsize=4096)
def allow_rules(allow: Allow, direction: str, verdict: str) -> tuple[tuple[str, ...], tuple[NamedSet, ...]]:
    """The rules of one Allow: (address group x protocol), each family's addresses apart; with
    any address, one rule covers both families. And the named sets they use."""
    if allow.allows_nothing:
        return (), ()
    field = "saddr" if direction == "ingress" else "daddr"
    ports = _port_groups(allow.ports)
    matches: list[str] = []
    sets: list[NamedSet] = []
    if allow.addresses is None:
        matches.append("")
    for family, kw in FAMILY_KEYWORD.items():
        groups, named = _address_groups(allow.addresses, family) or ([], [])
        sets += named
        for a in groups:
            matches.append(f"{kw} {field} " + a.replace("@EXCEPT", f"{kw} {field} !=") + " ")
    note = comment(f"{ALLOW}{allow.policy} {allow.rule}")
    rules = tuple(f"{m}{p} counter {verdict} {note}".replace("  ", " ").strip() for m in matches for p in ports or [""])
    return rules, tuple(sets)


def pod_chain(rules: PodRules, direction: str, sets: dict[str, NamedSet]) -> list[str]:
    """The chain's rules; the named sets they use are added to `sets`."""
    allows = rules.ingress if direction == "ingress" else rules.egress
    isolated_by = rules.ingress_isolated_by if direction == "ingress" else rules.egress_isolated_by
    verdict = "return" if direction == "ingress" else "accept"
    # a pod always reaches itself (the conformance tests' AllowLoopback): through its own
    # Service, the hairpin passes this node
    field = "saddr" if direction == "ingress" else "daddr"
    itself = comment("allow the pod itself")
    body = [
        f"{FAMILY_KEYWORD[ipaddress.ip_address(ip).version]} {field} {ip} counter {verdict} {itself}"
        for ip in rules.pod.ips
    ]
    for allow in allows:  # pods that share a rule share its text (allow_rules is cached)
        text, named = allow_rules(allow, direction, verdict)
        body += text
        sets.update((n.name, n) for n in named)
    body.append(f"counter drop {comment(f'{ISOLATED}({direction}) by ' + ', '.join(isolated_by))}")
    return body


def _vmap(kw: str, field: str, entries: list[tuple[str, str]]) -> str:
    return f"{kw} {field} vmap {{ {', '.join(f'{ip} : jump {chain}' for ip, chain in entries)} }}"


def render(node_rules: Iterable[PodRules]) -> str:
    """The `nft -f` text that makes the table exactly this (with no isolated pod: an empty
    table of accepting base chains, harmless)."""
    chains: dict[str, list[str]] = {}
    sets: dict[str, NamedSet] = {}
    jumps: dict[tuple[str, int], list[tuple[str, str]]] = {}
    for rules in node_rules:
        for direction, isolated in (("ingress", rules.ingress_isolated_by), ("egress", rules.egress_isolated_by)):
            if not isolated:
                continue
            name = chain_name(direction, rules)
            chains[name] = pod_chain(rules, direction, sets)
            for ip in rules.pod.ips:
                family = ipaddress.ip_address(ip).version
                jumps.setdefault((direction, family), []).append((ip, name))
    lines = [f"table {TABLE}", f"delete table {TABLE}", f"table {TABLE} {{"]
    for named in sets.values():
        lines.append(f"  set {named.name} {{ type {SET_TYPE[named.family]}; flags interval; auto-merge; "
                     f"elements = {{ {named.elements} }} }}")  # fmt: skip
    for name, body in chains.items():
        lines.append(f"  chain {name} {{")
        lines += [f"    {r}" for r in body]
        lines.append("  }")
    forward = ["ct state established,related accept"]
    inbound = ["ct state established,related accept", f"icmpv6 type {{ {ND_TYPES} }} accept"]
    for fam, kw in FAMILY_KEYWORD.items():
        if jumps.get(("ingress", fam)):
            forward.append(_vmap(kw, "daddr", jumps[("ingress", fam)]))
    for fam, kw in FAMILY_KEYWORD.items():
        if jumps.get(("egress", fam)):
            forward.append(_vmap(kw, "saddr", jumps[("egress", fam)]))
            inbound.append(_vmap(kw, "saddr", jumps[("egress", fam)]))
    for base, hook, body in (("forward", "forward", forward), ("input", "input", inbound)):
        lines.append(f"  chain {base} {{")
        lines.append(f"    type filter hook {hook} priority filter; policy accept;")
        lines += [f"    {r}" for r in body]
        lines.append("  }")
    lines.append("}")
    return "\n".join(lines) + "\n"


def cleanup_text() -> str:
    """Removes podnet-policy's table, and only it (made first, so deleting never fails)."""
    return f"table {TABLE}\ndelete table {TABLE}\n"


class NftError(RuntimeError):
    pass


def apply(text: str, netns: str | None = None) -> None:
    """One `nft -f -` run: all of `text` or nothing. Its own process rather than the proxy's
    in-process libnftables context, which is not to be shared between threads."""
    from netns import run as run_in

    r = run_in(netns, ["nft", "-f", "-"], input=text, capture_output=True, text=True)
    if r.returncode != 0:
        raise NftError("nft -f: " + " | ".join(line.strip() for line in r.stderr.strip().splitlines()[:3]))


def present(netns: str | None = None) -> bool:
    from netns import run as run_in

    return run_in(netns, ["nft", "list", "table", *TABLE.split()], capture_output=True).returncode == 0


def cleanup(netns: str | None = None) -> bool:
    """Remove podnet-policy's table (only it); True when there was one."""
    if not present(netns):
        return False
    apply(cleanup_text(), netns)
    return True
