"""The kernel's own reason for dropping the probe, as pwru finds it.

Since 5.17 every `kfree_skb_reason()` fires the `skb:kfree_skb` tracepoint with the freeing
function (`location`) and an `enum skb_drop_reason`. A bpftrace program attached to it parses
each freed packet's IPv4 and TCP/UDP/ICMP headers itself (through BTF: `struct sk_buff` is
read as the running kernel lays it out) and prints only the probes' own packets, matched by
their source port or echo id in either direction, so the kernel's whole traffic never
crosses into user space. Each event names the network namespace by its inode; the caller
maps inodes to pods and nodes.

The reason names come from the tracepoint's own format file (its `__print_symbolic` table),
so they are the running kernel's, whatever its version adds or renumbers.

Debian's bpftrace is the tool: one process per trace (or one for a whole probe matrix),
compiled and attached before the probe leaves. When bpftrace, BTF or the tracepoint is
missing, `KernelWatch.unavailable` says why and the trace carries on without it.
"""

from __future__ import annotations

import ipaddress
import os
import re
import shutil
import signal
import struct
import subprocess
import threading
from dataclasses import dataclass

TRACEFS = "/sys/kernel/tracing"
FORMAT = f"{TRACEFS}/events/skb/kfree_skb/format"
BTF = "/sys/kernel/btf/vmlinux"
READY = "PODNET-READY"
START_TIMEOUT = 60.0  # compiling and loading: seconds on a busy 2-core machine
SYMBOL = re.compile(r"\{\s*(\d+),\s*\"(\w+)\"\s*\}")

# Reasons that are the ordinary end of a packet's life for a probe: the probe's raw socket
# owns no connection, so the reply reaching the source pod is freed as NO_SOCKET.
EXPECTED_AT_SOURCE = {"NO_SOCKET", "NOT_SPECIFIED", "SOCKET_FILTER"}


@dataclass(frozen=True)
class KernelDrop:
    ns_inode: int
    ifindex: int
    reason: str  # the enum skb_drop_reason name, without SKB_DROP_REASON_
    location: str  # the kernel function that freed it
    proto: int
    src: str
    dst: str
    port: int  # the probe's port or echo id the event matched on
    where: str = ""  # pod/NAME or node/NAME, filled in by the caller
    ifname: str = ""

    def describe(self) -> str:
        at = f" at {self.where}" if self.where else f" in netns {self.ns_inode}"
        dev = f" {self.ifname}" if self.ifname else ""
        return f"kernel dropped it{at}{dev}: {self.reason} in {self.location}"


def program(ports: list[int]) -> str:
    """The bpftrace program: one printf per freed IPv4 packet of the given flows.

    Offsets are read byte by byte from the linear data (the headers of a probe always are),
    so the printed ports are in host order whatever the machine's endianness.
    """
    match = " || ".join(f"$a == {p} || $b == {p}" for p in ports) or "0"
    return f"""
tracepoint:skb:kfree_skb
{{
  $skb = (struct sk_buff *)args->skbaddr;
  if ($skb->protocol != 0x0008) {{ return; }}
  $nh = $skb->network_header;
  if ($nh == 0xffff) {{ return; }}
  $ip = $skb->head + $nh;
  $vihl = *(uint8 *)$ip;
  if (($vihl >> 4) != 4) {{ return; }}
  $proto = *(uint8 *)($ip + 9);
  $l4 = $ip + (($vihl & 0xf) * 4);
  $a = (uint16)((*(uint8 *)$l4) << 8 | *(uint8 *)($l4 + 1));
  $b = (uint16)((*(uint8 *)($l4 + 2)) << 8 | *(uint8 *)($l4 + 3));
  if ($proto == 1) {{
    $a = (uint16)((*(uint8 *)($l4 + 4)) << 8 | *(uint8 *)($l4 + 5));
    $b = $a;
  }}
  if (!({match})) {{ return; }}
  $ns = (uint32)0;
  $ifi = (int32)0;
  if ($skb->dev != 0) {{
    $ns = $skb->dev->nd_net.net->ns.inum;
    $ifi = $skb->dev->ifindex;
  }} else if ($skb->sk != 0) {{
    $ns = $skb->sk->__sk_common.skc_net.net->ns.inum;
  }}
  printf("DROP %d %s %u %d %u %u %u %u %u\\n", args->reason, ksym(args->location), $ns, $ifi,
         $proto, *(uint32 *)($ip + 12), *(uint32 *)($ip + 16), $a, $b);
}}
BEGIN {{ printf("{READY}\\n"); }}
"""


def reason_names(format_text: str) -> dict[int, str]:
    return {int(n): name for n, name in SYMBOL.findall(format_text)}


def _addr(raw: int) -> str:
    # the u32 was loaded from network-order bytes by a little-endian read
    return str(ipaddress.IPv4Address(struct.pack("<I", raw)))


def parse(line: str, names: dict[int, str], ports: list[int]) -> KernelDrop | None:
    parts = line.split()
    if len(parts) != 10 or parts[0] != "DROP":
        return None
    try:
        reason, location = int(parts[1]), parts[2]
        ns, ifindex, proto, src, dst, a, b = (int(x) for x in parts[3:])
    except ValueError:
        return None
    port = a if a in ports else b
    return KernelDrop(ns, ifindex, names.get(reason, str(reason)), location, proto, _addr(src), _addr(dst), port)


def missing() -> str:
    """Why the kernel's reasons cannot be had here, or "" when they can."""
    if shutil.which("bpftrace") is None:
        return "bpftrace is not installed (Debian: apt install bpftrace)"
    if not os.path.exists(BTF):
        return f"the kernel has no BTF ({BTF})"
    if not os.path.exists(FORMAT):
        # tracefs is often simply not mounted (containers, minimal systems): mount it once
        subprocess.run(["mount", "-t", "tracefs", "tracefs", TRACEFS], capture_output=True)
        if not os.path.exists(FORMAT):
            return "the kernel has no skb:kfree_skb tracepoint (or tracefs cannot be mounted)"
    with open(FORMAT) as f:
        if "reason" not in f.read():
            return "the kernel's skb:kfree_skb has no drop reason (kernel older than 5.17)"
    return ""


class KernelWatch:
    """bpftrace watching kfree_skb for some flows. `launch()` starts it (it takes seconds to
    compile and attach, so the caller sets up the rest meanwhile); `wait()` returns once it
    is attached, or knows why it cannot be; `drops()` is what it saw so far, for one trace
    among many sharing it; `stop()` ends it. The process never outlives the block."""

    def __init__(self, ports: list[int]):
        self.ports = list(ports)
        self.unavailable = ""
        self._proc: subprocess.Popen | None = None
        self._names: dict[int, str] = {}
        self._lines: list[str] = []
        self._lock = threading.Lock()
        self._reader: threading.Thread | None = None
        self._ready = threading.Event()

    def launch(self) -> KernelWatch:
        self.unavailable = missing()
        if self.unavailable:
            self._ready.set()
            return self
        with open(FORMAT) as f:
            self._names = reason_names(f.read())
        self._proc = subprocess.Popen(
            ["bpftrace", "-B", "line", "-e", program(self.ports)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            text=True,
        )
        self._reader = threading.Thread(target=self._read, args=(self._proc,), daemon=True)
        self._reader.start()
        return self

    def _read(self, proc: subprocess.Popen) -> None:
        # a thread, so the pipe never fills while the trace is busy elsewhere
        for line in proc.stdout or ():
            if READY in line:
                self._ready.set()
                continue
            with self._lock:
                self._lines.append(line)
        self._ready.set()

    def wait(self, timeout: float = START_TIMEOUT) -> KernelWatch:
        if self._proc is None:
            return self
        if not self._ready.wait(timeout):
            self.unavailable = f"bpftrace failed: it did not attach within {timeout:.0f} s"
            self._end()
        elif self._proc is not None and self._proc.poll() is not None:
            err = self._proc.stderr.read() if self._proc.stderr else ""
            self.unavailable = f"bpftrace failed: {_first_error(err) or 'it exited'}"
            self._end()
        return self

    def start(self, timeout: float = START_TIMEOUT) -> KernelWatch:
        return self.launch().wait(timeout)

    def drops(self) -> list[KernelDrop]:
        with self._lock:
            lines = list(self._lines)
        return [d for line in lines if (d := parse(line, self._names, self.ports))]

    def stop(self) -> list[KernelDrop]:
        self._end()
        return self.drops()

    def _end(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        proc.send_signal(signal.SIGINT)  # bpftrace detaches and flushes on SIGINT
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if self._reader is not None:
            self._reader.join(timeout=2)
        for pipe in (proc.stdout, proc.stderr):
            if pipe is not None:
                pipe.close()

    def __enter__(self) -> KernelWatch:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def _first_error(stderr: str) -> str:
    for line in stderr.splitlines():
        if line.startswith("ERROR") and "RLIMIT_MEMLOCK" not in line:
            return line.removeprefix("ERROR: ")
    return ""


def for_flow(drops: list[KernelDrop], port: int) -> list[KernelDrop]:
    return [d for d in drops if d.port == port]


def netns_inode(path: str | None) -> int:
    """The inode the kernel names a namespace by: /run/netns/NAME, or our own."""
    return os.stat(path or "/proc/self/ns/net").st_ino
