"""The /etc/resolv.conf a forked workload sees: a mount namespace per distinct content,
made once and entered by every pod that has that content.

A pod's resolv.conf differs only by its Kubernetes namespace (the search list), so a lab
of a thousand pods needs a handful of views, not a thousand. A mount namespace of its own
per pod (unshare + bind, as `ip netns exec` does) costs at both ends: unshare copies every
mount of the machine (hundreds), each later mount or unmount on the machine (every pod's
`netns add` and `netns del`) propagates into each copy, and a pod's exit unmounts its copy
-- measured, about 1.4 ms of kernel time per pod at exit alone.

A view is made by a short-lived child (unshare, mounts made slaves of the machine's so no
change flows back, the content bound over /etc/resolv.conf); the controller opens the
child's /proc/PID/ns/mnt, which keeps the namespace alive after the child is gone, and each
workload it forks enters it with setns(2). The namespace goes when the controller does (its
last reference), which `lab down` ensures; its content file lives in the lab's state
directory (podlogs.resolv_dir, shared with `lab exec`'s /etc/netns/ entries).
"""

from __future__ import annotations

import ctypes
import os
import signal

from podnet.lab import podlogs

CLONE_NEWNS = 0x00020000
MS_REC, MS_SLAVE, MS_BIND = 0x4000, 0x80000, 0x1000

_libc = ctypes.CDLL(None, use_errno=True)


def _check(rc: int, what: str) -> None:
    if rc != 0:
        raise OSError(ctypes.get_errno(), what)


class ResolvViews:
    """Mount namespaces by resolv.conf content, held open (fds) by the process that forks pods."""

    def __init__(self, lab: str):
        self.lab = lab
        self.fds: dict[str, int | None] = {}  # content's file -> namespace fd (None: no view possible)

    def fd(self, content: str) -> int | None:
        """The view showing `content` as /etc/resolv.conf (made on first use); None when this
        machine has no /etc/resolv.conf to cover."""
        src = os.path.join(podlogs.resolv_dir(self.lab, content), "resolv.conf")
        if src not in self.fds:
            self.fds[src] = self._make(src)
        return self.fds[src]

    def close(self) -> None:
        for fd in self.fds.values():
            if fd is not None:
                os.close(fd)
        self.fds.clear()

    def _make(self, src: str) -> int | None:
        target = os.path.realpath("/etc/resolv.conf")
        if not os.path.exists(target):
            return None
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:  # the view's maker: it only lives until its namespace is held open
            try:
                os.close(r)
                _check(_libc.unshare(CLONE_NEWNS), "unshare(CLONE_NEWNS)")
                _check(_libc.mount(b"none", b"/", None, MS_REC | MS_SLAVE, None), "mount --make-rslave /")
                _check(_libc.mount(src.encode(), target.encode(), None, MS_BIND, None), f"bind {src} over {target}")
                os.write(w, b"1")
                signal.pause()
            finally:
                os._exit(1)
        os.close(w)
        try:
            if os.read(r, 1) != b"1":
                raise OSError(f"could not make the resolv.conf view {src}")
            return os.open(f"/proc/{pid}/ns/mnt", os.O_RDONLY | os.O_CLOEXEC)
        finally:
            os.close(r)
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)


def enter(fd: int) -> None:
    """In a forked workload (single-threaded): switch to the view's mount namespace."""
    _check(_libc.setns(fd, CLONE_NEWNS), "setns(CLONE_NEWNS)")
