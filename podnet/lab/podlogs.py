"""What a container runtime gives each pod besides its network: a log of its stdout and
stderr (`podnet lab logs pod/NAME`), and an /etc/resolv.conf of its own (cluster DNS).

The resolv.conf lives where `ip netns exec` looks, /etc/netns/<pod netns>/resolv.conf, so a
person's `podnet lab exec pod/X -- getent hosts redis` sees it; a workload the lab forks gets
the same view from a mount namespace of its own with that file bind-mounted over
/etc/resolv.conf (what `ip netns exec` does, done in the forked child).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
from concurrent.futures import Executor

from podnet.lab import names

MAX_LOG_BYTES = 1 << 20  # `logs` shows the tail; a log that grew past this starts again
ETC_NETNS = "/etc/netns"


def path(lab: str, pod: str) -> str:
    d = os.path.join(names.state_dir(lab), "logs")
    os.makedirs(d, exist_ok=True)
    return os.path.join(d, f"{pod}.log")


def redirect(log_path: str) -> None:
    """In a forked workload: stdout and stderr into the pod's log (kept across restarts)."""
    with contextlib.suppress(OSError):
        if os.path.getsize(log_path) > MAX_LOG_BYTES:
            os.truncate(log_path, 0)
    fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)


def etc_dir(lab: str, pod: str) -> str:
    return os.path.join(ETC_NETNS, names.pod_netns(lab, pod))


def resolv_dir(lab: str, resolv_conf: str) -> str:
    """A directory holding `resolv_conf` as its resolv.conf, one per distinct content (the
    content differs only by the pod's Kubernetes namespace), in the lab's state directory."""
    d = os.path.join(names.state_dir(lab), "resolv", hashlib.sha256(resolv_conf.encode()).hexdigest()[:16])
    if not os.path.exists(os.path.join(d, "resolv.conf")):
        os.makedirs(d, exist_ok=True)
        tmp = os.path.join(d, f"resolv.conf.tmp.{os.getpid()}")
        with open(tmp, "w") as f:
            f.write(resolv_conf)
        os.replace(tmp, os.path.join(d, "resolv.conf"))
    return d


def write_etc(lab: str, pod: str, resolv_conf: str | None) -> None:
    """/etc/netns/<pod netns> as a symlink to the shared directory of its content: a short
    symlink is held in its inode, so it costs no data block to write nor to free (on a disk
    mounted with `discard`, freeing a block costs ~2 ms: seconds for a thousand pods)."""
    if resolv_conf is None:
        return
    link, target = etc_dir(lab, pod), resolv_dir(lab, resolv_conf)
    with contextlib.suppress(FileNotFoundError):
        _remove_entry(link)
    os.makedirs(ETC_NETNS, exist_ok=True)
    os.symlink(target, link)


def _remove_entry(entry: str) -> None:
    """An /etc/netns/ entry: a symlink (written by write_etc) or a directory (by earlier labs)."""
    if os.path.islink(entry):
        os.unlink(entry)
    else:
        shutil.rmtree(entry, ignore_errors=True)


def remove_etc(lab: str, pod: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        _remove_entry(etc_dir(lab, pod))
    with contextlib.suppress(OSError):
        os.unlink(path(lab, pod))


def remove_all_etc(lab: str, pool: Executor | None = None) -> None:
    """`lab down`: every /etc/netns/ entry of the lab's pods (by the lab's name prefix). With
    a pool, the removals are only handed to it: a thousand directories take seconds of the
    disk's time, which the caller spends on other work meanwhile."""
    prefix = names.pod_netns(lab, "")
    with contextlib.suppress(FileNotFoundError):
        for entry in os.listdir(ETC_NETNS):
            if entry.startswith(prefix):
                if pool is None:
                    with contextlib.suppress(FileNotFoundError):
                        _remove_entry(os.path.join(ETC_NETNS, entry))
                else:
                    pool.submit(_remove_entry, os.path.join(ETC_NETNS, entry))
