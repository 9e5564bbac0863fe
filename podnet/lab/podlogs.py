"""What a container runtime gives each pod besides its network: a log of its stdout and
stderr (`podnet lab logs pod/NAME`), and an /etc/resolv.conf of its own (cluster DNS).

The resolv.conf lives where `ip netns exec` looks, /etc/netns/<pod netns>/resolv.conf, so a
person's `podnet lab exec pod/X -- getent hosts redis` sees it; a workload the lab forks gets
the same view from a mount namespace of its own with that file bind-mounted over
/etc/resolv.conf (what `ip netns exec` does, done in the forked child).
"""

from __future__ import annotations

import contextlib
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


def write_etc(lab: str, pod: str, resolv_conf: str | None) -> None:
    if resolv_conf is None:
        return
    d = etc_dir(lab, pod)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "resolv.conf"), "w") as f:
        f.write(resolv_conf)


def remove_etc(lab: str, pod: str) -> None:
    shutil.rmtree(etc_dir(lab, pod), ignore_errors=True)
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
                    shutil.rmtree(os.path.join(ETC_NETNS, entry), ignore_errors=True)
                else:
                    pool.submit(shutil.rmtree, os.path.join(ETC_NETNS, entry), True)
