"""Commands in several namespaces at once. Each child enters its namespace between fork and
exec (no `ip netns exec`, whose mount-namespace work costs more than most of these commands),
and all of them run side by side: a trace touches every node, and doing that one node after
the other would be most of its time."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass

from podnet.lab.node import Namespace


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
    return Namespace(netns).popen(list(args), **kw) if netns else subprocess.Popen(list(args), **kw)


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
