"""Address translation as conntrack recorded it: for the probe's flow, in each namespace, the
original tuple and the reply tuple. A reply source other than the original destination is a
DNAT (to that endpoint); a reply destination other than the original source is an SNAT."""

from __future__ import annotations

import re
from dataclasses import dataclass

import netns
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
    state = next((w for w in line.split() if w.isupper() and "=" not in w and not w.startswith("[")), "")
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
    """The flow's entries in each (netns, label) place. Read from the namespace's
    /proc/net/nf_conntrack when the kernel has it (no process to start), else `conntrack -L`."""
    out = []
    for name, where in places:
        lines = _proc_table(name)
        if lines is None:
            lines = nsexec.run_all([nsexec.Job(name, ("conntrack", "-L", *_filter(flow)))])[0].out.splitlines()
        out += [n for line in lines if _is_flow(line, flow) and (n := parse(line, where))]
    return out


def _proc_table(name: str | None) -> list[str] | None:
    """/proc/thread-self/net is the namespace of the thread that opens it."""
    try:
        with netns.entered(name), open("/proc/thread-self/net/nf_conntrack") as f:
            return f.read().splitlines()
    except OSError:
        return None


def _is_flow(line: str, flow: Flow) -> bool:
    words = line.split()
    if flow.proto not in words[:4]:
        return False
    first = "id" if flow.proto == "icmp" else "sport"
    fields = FIELD.findall(line)
    return next((v for k, v in fields if k == first), None) == str(flow.port)


def forget(places: list[tuple[str | None, str]], flow: Flow) -> None:
    """Remove the probe's entries: the next probe must not ride on this one's NAT decision."""
    nsexec.run_all([nsexec.Job(name, ("conntrack", "-D", *_filter(flow))) for name, _ in places])
