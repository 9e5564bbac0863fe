"""A lab's processes in one cgroup (v2) of their own, so `lab down` kills them with one write.

The controller joins the cgroup before it starts anything, so etcd, the agents, the CNI
calls and every pod's workload are born in it (a child inherits its parent's cgroup).
`lab down` then writes 1 to its `cgroup.kill`: the kernel sends SIGKILL to every process in
it at once, including one being forked at that moment, where a walk of /proc signals one pid
at a time (each signal lets the victim run its exit before the walk goes on: seconds for a
thousand pods) and can miss a child forked behind it. `cgroup.events` says when the last
one is gone.

The cgroup is made under the cgroup of the process that starts the lab (a child of one's
own cgroup is what a delegated subtree allows), named `podnet.lab.<lab>`, and its path is
kept in the lab's state directory; `lab down` touches a recorded path only if it ends in
that name. Without cgroup v2 (or `cgroup.kill`, Linux >= 5.14, or the right to make a
cgroup) a lab runs without one and `lab down` falls back to the walk of /proc, which it
also does after the kill for processes that were never in the cgroup (`lab exec`).
"""

from __future__ import annotations

import contextlib
import os
import time

from podnet.lab import mountinfo
from podnet.lab.state import LabFiles

MOUNTINFO = mountinfo.PATH


def name(lab: str) -> str:
    return f"podnet.lab.{lab}"


def v2_mount() -> str | None:
    """Where the cgroup v2 hierarchy is mounted (/sys/fs/cgroup, or .../unified on a hybrid host)."""
    return next((m.point for m in mountinfo.mounts(MOUNTINFO) if m.fstype == "cgroup2"), None)


def own_cgroup() -> str | None:
    """This process's cgroup in the v2 hierarchy ("0::/path" in /proc/self/cgroup)."""
    try:
        with open("/proc/self/cgroup") as f:
            for line in f:
                if line.startswith("0::"):
                    return line[3:].strip()
    except OSError:
        pass
    return None


def _beside_me(lab: str) -> str | None:
    """Where this process would make the lab's cgroup: a child of its own."""
    mount, own = v2_mount(), own_cgroup()
    if mount is None or own is None:
        return None
    return os.path.join(mount, own.lstrip("/"), name(lab))


def create(lab: str) -> str | None:
    """Make the lab's cgroup and record its path; None (and nothing made) where it cannot be."""
    path = _beside_me(lab)
    if path is None:
        return None
    try:
        os.mkdir(path)
    except FileExistsError:
        pass  # left by a controller before this one: the same lab's
    except OSError:
        return None
    if not os.path.exists(os.path.join(path, "cgroup.kill")):
        with contextlib.suppress(OSError):
            os.rmdir(path)
        return None
    with open(LabFiles(lab).path("cgroup"), "w") as f:
        f.write(path + "\n")
    return path


def recorded(lab: str) -> str | None:
    """The lab's cgroup as recorded (or, the record lost, where this process would have made
    it), if it is one (by its name) and still exists."""
    try:
        with open(LabFiles(lab).path("cgroup")) as f:
            path: str | None = f.read().strip()
    except OSError:
        path = _beside_me(lab)
    if path is None or os.path.basename(path) != name(lab) or not os.path.isfile(os.path.join(path, "cgroup.kill")):
        return None
    return path


def join(path: str) -> None:
    """Move the calling process into the cgroup (its later children are born there)."""
    with open(os.path.join(path, "cgroup.procs"), "w") as f:
        f.write("0\n")


def kill(path: str) -> None:
    """SIGKILL to every process in the cgroup, by the kernel, at once (it does not wait for them)."""
    with open(os.path.join(path, "cgroup.kill"), "w") as f:
        f.write("1\n")


def populated(path: str) -> bool:
    try:
        with open(os.path.join(path, "cgroup.events")) as f:
            return any(line.split() == ["populated", "1"] for line in f)
    except FileNotFoundError:
        return False


def remove(path: str, timeout: float = 10.0) -> bool:
    """Wait until no process is left in it (a killed process is gone once the kernel has torn
    down its memory), then remove it. False if some process outlived the wait."""
    deadline = time.monotonic() + timeout
    while populated(path):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    with contextlib.suppress(FileNotFoundError):
        os.rmdir(path)
    return True
