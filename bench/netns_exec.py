"""Which way of running a command inside a network namespace is fastest, in one run.

Ways compared (each runs /bin/true in a fresh namespace; "here" runs it in our own, the floor):
  ip-netns-exec   `ip netns exec NAME cmd`: an extra exec, plus a mount namespace, /etc/netns
                  bind mounts and a /sys remount
  nsenter         `nsenter --net=PATH cmd`: an extra exec
  preexec-setns   subprocess with preexec_fn=setns: no extra exec, but a preexec_fn forbids
                  vfork, so the whole parent's page tables are copied (fork)
  setns-vfork     netns.run: this thread enters, subprocess spawns (vfork) so the child starts
                  inside, the thread returns: what podnet uses

Scenarios: this small process; the same with a big heap (the lab controller and trace are big
processes, and fork's cost grows with the parent's memory); several threads at once.
Methods are interleaved round by round, so load from elsewhere hits all of them alike.

    sudo .venv/bin/python -m bench.netns_exec [--rounds 30] [--heap-mb 1024] [--threads 4]
"""

from __future__ import annotations

import argparse
import ctypes
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable

import netns

CMD = ["/bin/true"]
_libc = ctypes.CDLL(None, use_errno=True)


def methods(name: str) -> dict[str, Callable[[], None]]:
    path = netns.path_of(name)
    fd = netns.open(path)  # held for the run: preexec_fn must not open files between fork and exec

    def preexec() -> None:
        if _libc.setns(fd, netns.CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), "setns")

    return {
        "here": lambda: subprocess.run(CMD, check=True),
        "ip-netns-exec": lambda: subprocess.run(["ip", "netns", "exec", name, *CMD], check=True),
        "nsenter": lambda: subprocess.run(["nsenter", f"--net={path}", *CMD], check=True),
        "preexec-setns": lambda: subprocess.run(CMD, preexec_fn=preexec, check=True),
        "setns-vfork": lambda: netns.run(name, CMD, check=True),
    }


def measure(ways: dict[str, Callable[[], None]], rounds: int, threads: int) -> dict[str, float]:
    """Median ms per command. With threads, each round runs `threads` commands at once and a
    command's cost is the round's wall time divided by `threads` (the throughput view)."""
    samples: dict[str, list[float]] = {k: [] for k in ways}
    for _ in range(rounds):
        for key, fn in ways.items():
            t = time.perf_counter()
            if threads == 1:
                fn()
            else:
                workers = [threading.Thread(target=fn) for _ in range(threads)]
                for w in workers:
                    w.start()
                for w in workers:
                    w.join()
            samples[key].append((time.perf_counter() - t) * 1000 / threads)
    return {k: statistics.median(v) for k, v in samples.items()}


def report(title: str, ms: dict[str, float]) -> None:
    best = min(v for k, v in ms.items() if k != "here")
    print(f"-- {title}")
    for key, v in sorted(ms.items(), key=lambda kv: kv[1]):
        ratio = "" if key == "here" else f"  x{v / best:.2f} of the fastest"
        print(f"   {key:15s} {v:7.2f} ms{ratio}")


def rss_mb() -> int:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) // 1024 for line in f if line.startswith("VmRSS:"))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=30)
    ap.add_argument("--heap-mb", type=int, default=1024)
    ap.add_argument("--threads", type=int, default=4)
    args = ap.parse_args()
    name = f"podnet-bench-{uuid.uuid4().hex[:8]}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        ways = methods(name)
        measure(ways, 2, 1)  # warm the page cache for ip, nsenter and true
        report(f"small process (RSS {rss_mb()} MB), one at a time", measure(ways, args.rounds, 1))
        report(f"small process, {args.threads} threads at once", measure(ways, args.rounds, args.threads))
        heap = b"x" * (args.heap_mb << 20)  # written, so its pages are really mapped
        report(f"big process (RSS {rss_mb()} MB), one at a time", measure(ways, args.rounds, 1))
        report(f"big process, {args.threads} threads at once", measure(ways, args.rounds, args.threads))
        del heap
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
