"""Are the interfaces on the probe's path there and up?

A packet cannot cross a link that is missing or down, and the kernel says little when it
tries (a veth whose peer is down drops silently; a pod whose eth0 went down lost its routes
with it). So before the probe leaves, trace reads every link on its way — the source pod's
eth0 and its host-side veth, each node's uplink and its port on the underlay, each possible
destination pod's eth0 and veth — with one `ip -j link` per namespace, all side by side.

Of a veth pair, the end that was set down is named, not the end that only lost its carrier
because of it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from podnet.debug import nsexec


@dataclass(frozen=True)
class LinkEnd:
    """One interface trace needs, and who it belongs to."""

    netns: str | None
    ifname: str
    where: str  # pod/NAME, node/NAME or underlay
    role: str  # "pod eth0", "host-side veth", "uplink", "underlay port"


@dataclass(frozen=True)
class LinkProblem:
    where: str
    ifname: str
    cause: str  # interface-missing | interface-down
    detail: str


def state(link: dict | None) -> str:
    """'missing', 'down' (set down), 'no-carrier' (up, but its peer or cable is not) or 'up'."""
    if link is None:
        return "missing"
    flags = link.get("flags", [])
    if "UP" not in flags:
        return "down"
    if "NO-CARRIER" in flags or "LOWER_UP" not in flags:
        return "no-carrier"
    return "up"


def problems(ends: list[LinkEnd], found: dict[str | None, dict[str, dict]]) -> list[LinkProblem]:
    """The ends that stop a packet. `found` is each namespace's links by name (a namespace
    that could not be read maps to {}: its links count as missing). An end without carrier
    is reported only when no end was set down or is missing: its peer is the cause then."""
    hard: list[LinkProblem] = []
    soft: list[LinkProblem] = []
    for end in ends:
        s = state(found.get(end.netns, {}).get(end.ifname))
        if s == "up":
            continue
        cause = "interface-missing" if s == "missing" else "interface-down"
        said = {"missing": "is missing", "down": "is down", "no-carrier": "has no carrier"}[s]
        problem = LinkProblem(end.where, end.ifname, cause, f"{end.where}: {end.role} {end.ifname} {said}")
        (soft if s == "no-carrier" else hard).append(problem)
    return hard or soft


def read(namespaces: list[str | None]) -> dict[str | None, dict[str, dict]]:
    unique = list(dict.fromkeys(namespaces))
    done = nsexec.run_all([nsexec.Job(ns, ("ip", "-j", "link", "show")) for ns in unique])
    out: dict[str | None, dict[str, dict]] = {}
    for d in done:
        try:
            out[d.job.netns] = {link["ifname"]: link for link in json.loads(d.out or "[]")} if d.status == 0 else {}
        except ValueError:
            out[d.job.netns] = {}
    return out


def check(ends: list[LinkEnd]) -> tuple[list[LinkProblem], dict[str | None, dict[str, dict]]]:
    found = read([e.netns for e in ends])
    return problems(ends, found), found
