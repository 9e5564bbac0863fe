"""A lab's state directory on a tmpfs of its own.

What a lab keeps under /run/podnet/labs/<lab>/ (etcd's data, the pods' logs, the agents'
address allocations, status files) lives as long as the lab does; /run is a tmpfs on most
machines for that reason. Where it is not (this machine's /run is on an ext4 disk mounted
with `discard`), every file that had a data block costs ~2 ms to unlink -- a thousand pods'
logs and allocations took seconds of `lab down` -- and etcd's fsyncs reach the disk. A tmpfs
mounted on the state directory gives every machine the same: `lab down` unmounts it and the
kernel frees every file at once.
"""

from __future__ import annotations

import ctypes
import os

from podnet.lab import mountinfo

MNT_DETACH = 2

_libc = ctypes.CDLL(None, use_errno=True)


def mount(root: str) -> bool:
    """A tmpfs on the (empty) directory `root`; False where one cannot be mounted (the
    directory then stays a plain one on its file system)."""
    return _libc.mount(SOURCE.encode(), root.encode(), b"tmpfs", 0, b"mode=0755") == 0


SOURCE = "podnet-lab"  # the mount's source name: how `lab down` knows the tmpfs is its own


def is_mounted(root: str) -> bool:
    """A tmpfs of a lab's (by its source name) is mounted right on `root`."""
    where = os.path.realpath(root)  # as mountinfo shows it
    return any(m.point == where and m.fstype == "tmpfs" and m.source == SOURCE for m in mountinfo.mounts())


def unmount(root: str) -> None:
    """Unmount the lab's tmpfs (every file in it goes with it); nothing if none is mounted."""
    if not is_mounted(root):
        return
    # detached: a process that had a file open (a pod's log) does not hold up `lab down`
    if _libc.umount2(root.encode(), MNT_DETACH) != 0:
        err = ctypes.get_errno()
        if is_mounted(root):
            raise OSError(err, f"umount {root}")
