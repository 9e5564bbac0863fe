"""UDP conntrack clean-up, as kube-proxy's pkg/proxy/conntrack/cleanup.go decides it: UDP has
no connection to close, so a client keeps sending to whatever its conntrack entry says for as
long as the entry lives.

For a UDP service port that changed, every entry to one of its service addresses on the
service port, and every entry to its node port, whose reply source is not a serving endpoint
(serving includes terminating) is deleted: entries to endpoints that went away, and entries
made while the Service had no endpoint (their reply source is the service address itself,
so they would blackhole the client). Entries of serving endpoints stay. A Service whose
EndpointSlice was deleted, or that was deleted itself, keeps no serving endpoint: all of its
entries go (kubernetes#139628).

Work is proportional to the change: filters are made for the changed service ports only,
and the kernel's UDP entries are listed once per sync that has any filter.
"""

from __future__ import annotations

import logging
import subprocess
from dataclasses import dataclass

from proxy.model import ServicePortModel

log = logging.getLogger("podnet.proxy")


@dataclass(frozen=True)
class Flow:
    """UDP entries to (dest, port) — any local address when dest is "" (a node port) — whose
    reply source is not one of `keep`."""

    dest: str
    port: int
    keep: frozenset[str] = frozenset()
    family: int = 4

    def matches(self, e: Entry) -> bool:
        return (e.dport == self.port and (not self.dest or e.dst == self.dest)
                and e.reply_src not in self.keep)  # fmt: skip


@dataclass(frozen=True)
class Entry:
    src: str
    dst: str
    sport: int
    dport: int
    reply_src: str

    def delete_args(self) -> list[str]:
        return ["-D", "-p", "udp", "-s", self.src, "-d", self.dst, "--sport", str(self.sport),
                "--dport", str(self.dport)]  # fmt: skip


def stale_flows(old: ServicePortModel | None, new: ServicePortModel | None) -> list[Flow]:
    """The filters a change of one service port from old to new calls for."""
    ref = new or old
    if ref is None or ref.protocol != "UDP":
        return []
    keep = frozenset(e.ip for e in new.endpoints if e.serving) if new is not None else frozenset()
    family = 6 if ":" in ref.cluster_ip else 4
    dests: dict[tuple[str, int], None] = {}
    for p in (old, new):
        if p is None:
            continue
        for addr in (p.cluster_ip, *p.external_ips, *p.load_balancer_ips):
            dests[(addr, p.port)] = None
        if p.node_port:
            dests[("", p.node_port)] = None
    return [Flow(addr, port, keep, family) for addr, port in dests]


def parse(text: str) -> list[Entry]:
    """`conntrack -L -p udp` lines: the first src/dst/sport/dport are the original direction,
    the second src is the reply's source (the endpoint, when the entry was DNATed)."""
    out = []
    for line in text.splitlines():
        fields: dict[str, list[str]] = {}
        for word in line.split():
            key, eq, value = word.partition("=")
            if eq:
                fields.setdefault(key, []).append(value)
        try:
            out.append(Entry(fields["src"][0], fields["dst"][0], int(fields["sport"][0]), int(fields["dport"][0]),
                             fields["src"][1]))  # fmt: skip
        except (KeyError, IndexError, ValueError):
            continue  # not a UDP entry line (a summary, or an unusual protocol)
    return out


def stale_entries(entries: list[Entry], flows: list[Flow]) -> list[Entry]:
    by_port: dict[int, list[Flow]] = {}
    for f in flows:
        by_port.setdefault(f.port, []).append(f)
    return [e for e in entries if any(f.matches(e) for f in by_port.get(e.dport, ()))]


def delete(flows: list[Flow]) -> int:
    """Delete the entries the flows select; returns how many `conntrack` calls failed."""
    failed = 0
    for family in sorted({f.family for f in flows}):
        listed = subprocess.run(["conntrack", "-L", "-p", "udp", "-f", "ipv6" if family == 6 else "ipv4"],
                                capture_output=True, text=True)  # fmt: skip
        for entry in stale_entries(parse(listed.stdout), [f for f in flows if f.family == family]):
            r = subprocess.run(["conntrack", *entry.delete_args()], capture_output=True, text=True)
            # exit status 1 with "0 flow entries" just means it expired meanwhile
            if r.returncode != 0 and "0 flow entries" not in r.stderr:
                failed += 1
                log.warning("conntrack %s failed: %s", " ".join(entry.delete_args()), r.stderr.strip())
    return failed
