"""Rule tracing: which netfilter rules one flow hit, in which namespace.

The flow is flagged with `meta nftrace set 1` by a table of our own (podnet-trace-…, hooked
before conntrack and NAT), in every namespace the packet may cross: the kernel clears the
flag whenever a packet changes namespace, so one flag at the source is not enough.

The events are read the way this machine's rules were written:
- iptables with the nf_tables backend (what `iptables` is here): `xtables-monitor --trace`,
  which prints each rule hit in iptables syntax, comments included, so a PODNET- rule is
  named as `iptables -S` shows it;
- nftables rules: `nft monitor trace`.
The legacy iptables backend has no such event stream (its TRACE goes to the kernel log), so
there only nftables rules are seen; the trace says so.
"""

from __future__ import annotations

import os
import re
import secrets
import signal
import subprocess
import time
from dataclasses import dataclass

from podnet.debug import nsexec
from podnet.debug.topology import Place

TABLE_PREFIX = "podnet-trace-"
SETTLE = 0.3  # seconds from a monitor's start until it surely listens (measured: ~20 ms idle)
PRIORITY = -350  # before raw (-300), conntrack (-200) and DNAT (-100): every later table is traced


@dataclass(frozen=True)
class Flow:
    """What identifies the probe's packets in both directions."""

    proto: str  # tcp | udp | icmp
    port: int  # the probe's source port, or its ICMP echo id

    def nft_matches(self) -> list[str]:
        if self.proto == "icmp":
            return [f"icmp id {self.port}"]
        return [f"{self.proto} sport {self.port}", f"{self.proto} dport {self.port}"]


@dataclass(frozen=True)
class RuleHit:
    where: str  # node/NAME (the namespace)
    table: str
    chain: str
    kind: str  # rule | policy | return
    verdict: str  # ACCEPT, DROP, CONTINUE, JUMP, ...
    rule: str  # the rule as the tool that wrote it spells it ("" for a policy)
    packet: str  # the packet as it entered this table: "IN=.. OUT=.. SRC=.. DST=.."
    family: str = ""  # nft's table family (ip, inet, ...), when nft reported it


def table_text(name: str, flow: Flow) -> str:
    rules = "".join(f"    {m} meta nftrace set 1\n" for m in flow.nft_matches())
    chains = "".join(
        f"  chain {c} {{\n    type filter hook {c} priority {PRIORITY}; policy accept;\n{rules}  }}\n"
        for c in ("prerouting", "output")
    )
    return f"table ip {name} {{\n{chains}}}\n"


def tool_for(proxy_mode: str) -> str:
    """'xtables' or 'nft': which event stream names this machine's rules."""
    if proxy_mode == "nftables":
        return "nft"
    try:
        out = subprocess.run(["iptables", "--version"], capture_output=True, text=True).stdout
    except OSError:
        return "nft"
    return "nft" if "legacy" in out else "xtables"


class TraceSession:
    """Trace flags and event monitors in a set of namespaces; everything is removed on exit,
    also when the block is left by Ctrl-C or SIGTERM."""

    def __init__(self, places: list[Place], flow: Flow, tool: str):
        self.places = places
        self.flow = flow
        self.tool = tool
        self.table = f"{TABLE_PREFIX}{os.getpid()}-{secrets.token_hex(3)}"
        self._marked: list[Place] = []
        self._monitors: list[tuple[Place, str, subprocess.Popen]] = []
        self.output: dict[tuple[str, str], str] = {}  # (place label, tool) -> what it printed
        self._started = time.monotonic()

    def __enter__(self) -> TraceSession:
        try:
            kw = {"stdout": subprocess.PIPE, "stderr": subprocess.DEVNULL, "stdin": subprocess.DEVNULL, "text": True}
            self._started = time.monotonic()
            for place in self.places:
                for tool in self.monitors():
                    self._monitors.append((place, tool, nsexec.start(place.netns, MONITORS[tool], **kw)))
            self._marked = list(self.places)  # before they exist: an interrupt meanwhile still removes them
            text = table_text(self.table, self.flow)
            jobs = [nsexec.Job(p.netns, ("nft", "-f", "-"), text) for p in self.places]
            for done, place in zip(nsexec.run_all(jobs), self.places, strict=True):
                if done.status != 0:
                    raise RuntimeError(f"cannot set trace flags in {place.label}: {done.err.strip()}")
        except BaseException:
            self.__exit__()
            raise
        return self

    def settle(self) -> None:
        """Monitors subscribe asynchronously and print nothing when ready: give them a moment
        (counted from their start, so set-up done meanwhile is not waited for twice)."""
        time.sleep(max(0.0, self._started + SETTLE - time.monotonic()))

    def __exit__(self, *exc) -> None:
        # a second Ctrl-C or SIGTERM must not cut the clean-up short: hold them until it is done
        old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
        try:
            self._remove()
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, old)

    def _remove(self) -> None:
        nsexec.run_all([nsexec.Job(p.netns, ("nft", "delete", "table", "ip", self.table)) for p in self._marked])
        self._marked = []
        time.sleep(0.05)  # events of the last packets are still on their way to the monitors
        for _, _, proc in self._monitors:
            proc.send_signal(signal.SIGTERM)
        for place, tool, proc in self._monitors:
            try:
                out, _ = proc.communicate(timeout=3)
            except subprocess.TimeoutExpired:
                proc.kill()
                out, _ = proc.communicate()
            self.output[(place.label, tool)] = out or ""
        self._monitors = []

    def monitors(self) -> list[str]:
        """xtables-monitor names iptables rules as iptables spells them, but not the rules of
        native nftables tables (someone's own firewall): in iptables mode nft's monitor
        reports those."""
        return ["xtables", "nft"] if self.tool == "xtables" else ["nft"]

    def hits(self) -> list[RuleHit]:
        out = []
        for (where, tool), text in self.output.items():
            if tool == "xtables":
                found = [h for h in parse_xtables(text, where) if h.table in XT_TABLES]
            else:
                found = parse_nft(text, where)
                if self.tool == "xtables":  # the iptables tables were read from xtables-monitor
                    found = [h for h in found if not (h.family == "ip" and h.table in XT_TABLES)]
            out += [h for h in found if not h.table.startswith(TABLE_PREFIX)]
        return out


MONITORS = {"xtables": ["xtables-monitor", "--trace"], "nft": ["nft", "monitor", "trace"]}
XT_TABLES = {"filter", "nat", "mangle", "raw", "security"}


XT_TRACE = re.compile(r"^\s*TRACE: \d+ (\w+) ([^:\s]+):([^:\s]+):(rule|policy|return)(?::(0x[0-9a-f]+))?:(\S+)\s*(.*)$")
NFT_TRACE = re.compile(r"^trace id (\w+) (ip|inet|bridge|netdev|arp) (\S+) (\S+) (rule|policy|verdict|packet:) ?(.*)$")
NFT_VERDICT = re.compile(r"^(.*?)\s*\(verdict (\S+?)(?: (\S+))?\)$")


# nf_tables' own verdict codes, which xtables-monitor prints as numbers
NFT_VERDICTS = {"0XFFFFFFFF": "CONTINUE", "0XFFFFFFFE": "BREAK", "0XFFFFFFFB": "RETURN"}


def parse_xtables(text: str, where: str) -> list[RuleHit]:
    hits, packet = [], ""
    for line in text.splitlines():
        if line.startswith("PACKET:"):
            packet = " ".join(line.split()[3:])
            continue
        m = XT_TRACE.match(line)
        if m:
            _, table, chain, kind, _handle, verdict, rule = m.groups()
            rule = re.sub(r"^-4 -t \S+ ", "", rule.strip())
            verdict = NFT_VERDICTS.get(verdict.upper(), verdict.upper())
            hits.append(RuleHit(where, table, chain, kind, verdict, rule, packet))
    return hits


def parse_nft(text: str, where: str) -> list[RuleHit]:
    hits, packet = [], ""
    for line in text.splitlines():
        m = NFT_TRACE.match(line.strip())
        if not m:
            continue
        _, family, table, chain, kind, rest = m.groups()
        if kind == "packet:":
            packet = rest
            continue
        if kind == "policy":
            hits.append(RuleHit(where, table, chain, "policy", rest.split()[0].upper(), "", packet, family))
            continue
        v = NFT_VERDICT.match(rest)
        rule, verdict = (v.group(1), v.group(2)) if v else (rest, "")
        hits.append(RuleHit(where, table, chain, kind, verdict.upper(), rule, packet, family))
    return hits
