"""Commands in several namespaces at once, all side by side: a trace touches every node, and
doing that one node after the other would be most of its time.

Each child enters its namespace through `nsenter --net=`, which then execs the command (same
pid, so signals reach it). Measured here from a process the size of a trace: 10 ms a
command, against 24 ms for entering the namespace in a preexec_fn (which rules out vfork)
and 26 ms for `ip netns exec` (which also remounts /sys)."""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass

from podnet.lab import names


@dataclass(frozen=True)
class Job:
    netns: str | None
    args: tuple[str, ...]
    input: str | None = None


@dataclass(frozen=True)
class Done:
    job: Job
    status: int
    out: str
    err: str


def start(netns: str | None, args: list[str] | tuple[str, ...], **kw) -> subprocess.Popen:
    prefix = ["nsenter", f"--net={os.path.join(names.NETNS_DIR, netns)}"] if netns else []
    return subprocess.Popen([*prefix, *args], **kw)


def run_all(jobs: list[Job], timeout: float = 30) -> list[Done]:
    procs = [
        start(j.netns, j.args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for j in jobs
    ]
    done = []
    try:
        for job, proc in zip(jobs, procs, strict=True):
            out, err = proc.communicate(job.input, timeout=timeout)
            done.append(Done(job, proc.returncode, out, err))
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    return done
