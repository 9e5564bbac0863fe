"""Address translation as conntrack recorded it: for the probe's flow, in each namespace, the
original tuple and the reply tuple. A reply source other than the original destination is a
DNAT (to that endpoint); a reply destination other than the original source is an SNAT."""

from __future__ import annotations

import re
from dataclasses import dataclass

from podnet.debug import nsexec
from podnet.debug.nftrace import Flow

FIELD = re.compile(r"(src|dst|sport|dport|type|code|id)=(\S+)")


@dataclass(frozen=True)
class Nat:
    where: str
    state: str
    orig_src: str
    orig_dst: str
    orig_dport: int | None
    reply_src: str
    reply_sport: int | None
    reply_dst: str

    @property
    def dnat(self) -> str | None:
        if self.reply_src != self.orig_dst or self.reply_sport != self.orig_dport:
            return f"{self.reply_src}:{self.reply_sport}" if self.reply_sport else self.reply_src
        return None

    @property
    def snat(self) -> str | None:
        return self.reply_dst if self.reply_dst != self.orig_src else None


def _filter(flow: Flow) -> list[str]:
    if flow.proto == "icmp":
        return ["-p", "icmp", "--icmp-id", str(flow.port)]
    return ["-p", flow.proto, "--orig-port-src", str(flow.port)]


def parse(line: str, where: str) -> Nat | None:
    fields = FIELD.findall(line)
    srcs = [v for k, v in fields if k == "src"]
    dsts = [v for k, v in fields if k == "dst"]
    sports = [int(v) for k, v in fields if k == "sport"]
    dports = [int(v) for k, v in fields if k == "dport"]
    if len(srcs) < 2 or len(dsts) < 2:
        return None
    words = line.split()
    state = next((w for w in words[3:5] if w.isupper() and "=" not in w), "")
    return Nat(
        where=where,
        state=state,
        orig_src=srcs[0],
        orig_dst=dsts[0],
        orig_dport=dports[0] if dports else None,
        reply_src=srcs[1],
        reply_sport=sports[1] if len(sports) > 1 else None,
        reply_dst=dsts[1],
    )


def entries(places: list[tuple[str | None, str]], flow: Flow) -> list[Nat]:
    """The flow's entries in each (netns, label) place, all read at once."""
    jobs = [nsexec.Job(netns, ("conntrack", "-L", *_filter(flow))) for netns, _ in places]
    out = []
    for done, (_, where) in zip(nsexec.run_all(jobs), places, strict=True):
        out += [n for line in done.out.splitlines() if (n := parse(line, where))]
    return out


def forget(places: list[tuple[str | None, str]], flow: Flow) -> None:
    """Remove the probe's entries: the next probe must not ride on this one's NAT decision."""
    nsexec.run_all([nsexec.Job(netns, ("conntrack", "-D", *_filter(flow))) for netns, _ in places])
