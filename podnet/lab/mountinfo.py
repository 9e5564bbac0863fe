"""The mounts this process sees, from /proc/self/mountinfo: where, what file system, from what
source (the fields cgroup.py and statefs.py look for)."""

from __future__ import annotations

from dataclasses import dataclass

PATH = "/proc/self/mountinfo"


@dataclass(frozen=True)
class Mount:
    point: str  # as mountinfo writes it (a space is \040)
    fstype: str
    source: str


def mounts(path: str = PATH) -> list[Mount]:
    """Every mount in `path` (none if it cannot be read)."""
    out = []
    try:
        with open(path) as f:
            for line in f:
                left, _, right = line.partition(" - ")
                fstype, source = (right.split(" ") + ["", ""])[:2]
                out.append(Mount(left.split(" ")[4], fstype, source))
    except OSError:
        pass
    return out
