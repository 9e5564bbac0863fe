"""Pid files that name a process, not a number, and signals that reach only that process.

A pid is reused once its process is gone; a lab's pid files outlive their processes (a
`kill -9`, a reboot of the namespace's users), so a bare number in a file may name some
other program by the time it is read. Each pid file therefore holds the pid *and* the
process's start time (field 22 of /proc/PID/stat, in clock ticks since boot, fixed for the
process's life), and every signal goes through a pidfd: the pidfd is opened first, the
start time is checked after, so the process checked is the process signalled, even if the
pid is reused in between (pidfd_send_signal to a pidfd of a dead process fails; it never
reaches a newcomer).
"""

from __future__ import annotations

import contextlib
import os
import signal as signals
from collections.abc import Callable


def start_time(pid: int) -> int | None:
    """The process's start time, or None when no such process runs (or it is a zombie)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()  # the name in () may hold spaces
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return None
    if fields[0] in ("Z", "X"):  # dead, not yet reaped by its parent: nothing to signal
        return None
    return int(fields[19])  # field 22 of stat; fields[0] is field 3


def write(path: str, pid: int) -> None:
    """Record `pid` with its start time (atomically: a reader sees the old file or the new)."""
    started = start_time(pid)
    tmp = f"{path}.tmp.{os.getpid()}"
    with open(tmp, "w") as f:
        f.write(f"{pid} {started if started is not None else 0}\n")
    os.replace(tmp, path)


def read_record(path: str) -> tuple[int, int] | None:
    """(pid, start time) as written; None when missing or not in this format (a file with a
    pid alone cannot be told from a reused pid, so it names no process)."""
    try:
        with open(path) as f:
            parts = f.read().split()
        pid, started = int(parts[0]), int(parts[1])
    except (FileNotFoundError, ValueError, IndexError):
        return None
    return (pid, started) if pid > 0 and started > 0 else None


def matches(pid: int, started: int) -> bool:
    return start_time(pid) == started


def read(path: str) -> int | None:
    """The pid the file names, when that very process still runs; else None."""
    rec = read_record(path)
    return rec[0] if rec is not None and matches(*rec) else None


def send(pid: int, started: int, sig: int, check: Callable[[int], bool] | None = None) -> bool:
    """Signal the process `pid` that started at `started` (and passes `check`, asked after
    the pidfd is open), and no other. True when the signal was sent."""
    try:
        fd = os.pidfd_open(pid)
    except (ProcessLookupError, OSError):
        return False
    try:
        if not matches(pid, started) or (check is not None and not check(pid)):
            return False
        with contextlib.suppress(ProcessLookupError):
            signals.pidfd_send_signal(fd, sig)
            return True
        return False
    finally:
        os.close(fd)


def kill(path: str, sig: int = signals.SIGKILL) -> int | None:
    """Signal the process a pid file names, if it is still that process; its pid, or None."""
    rec = read_record(path)
    if rec is None:
        return None
    return rec[0] if send(*rec, sig) else None
