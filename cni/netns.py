"""Network namespaces: open one by path and run a block of code inside it.

setns(2) switches only the calling thread. A plugin process is single-threaded and short
lived, so it switches its main thread in and back; sockets opened inside stay bound to the
namespace after the switch back, which is how one socket per namespace serves every step.
"""

from __future__ import annotations

import contextlib
import ctypes
import os

from cni.errors import UnknownContainer

CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)


def _setns(fd: int) -> None:
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


def open_netns(path: str, field: str = "CNI_NETNS") -> int:
    """Open a namespace path for setns; a path that is not a namespace is an unknown container."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        raise UnknownContainer(f"{field}: network namespace {path!r} does not exist") from None
    except OSError as e:
        raise UnknownContainer(f"{field}: cannot open network namespace {path!r}: {e.strerror}") from None
    return fd


@contextlib.contextmanager
def inside(fd: int):
    """Run the block in the namespace `fd`, then return to the namespace we came from."""
    home = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        try:
            _setns(fd)
        except OSError as e:
            raise UnknownContainer(f"CNI_NETNS: not a network namespace: {e.strerror}") from None
        try:
            yield
        finally:
            _setns(home)
    finally:
        os.close(home)
