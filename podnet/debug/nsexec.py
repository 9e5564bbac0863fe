"""Commands in several namespaces at once, all side by side: a trace touches every node, and
doing that one node after the other would be most of its time.

Each child is spawned by netns.popen (this thread enters, vfork, the thread returns), the
fastest way bench/netns_exec.py measured, most of all from a process the size of a trace."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass

import netns


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


def start(name: str | None, args: list[str] | tuple[str, ...], **kw) -> subprocess.Popen:
    """`args` in the namespace `name` (under /run/netns), or in ours when None."""
    return netns.popen(name, args, **kw)


def run_all(jobs: list[Job], timeout: float = 30) -> list[Done]:
    procs: list[subprocess.Popen] = []
    done = []
    try:
        # started inside the try: a namespace that cannot be entered raises, and the children
        # already started must not outlive the call
        for j in jobs:
            procs.append(
                start(j.netns, j.args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            )
        for job, proc in zip(jobs, procs, strict=True):
            out, err = proc.communicate(job.input, timeout=timeout)
            done.append(Done(job, proc.returncode, out, err))
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    return done
