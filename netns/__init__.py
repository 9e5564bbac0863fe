"""Network namespaces: enter one on this thread, run a command in one, open a socket in one.

The one way podnet enters a network namespace, shared by the CNI plugin, the proxy, the lab
and the debugging tools; it knows nothing of any of them (errors are its own
`NamespaceError`; the CNI plugin turns that into a CNI code at its own boundary).

A namespace is named as `ip netns` names them (a bare NAME is /run/netns/NAME, as a lab's
are), given as a path (a CNI runtime's CNI_NETNS, /proc/PID/ns/net), or as an open fd.

setns(2) moves only the calling thread, so `entered` switches this thread in and always back;
every other running thread of the process stays where it is (a thread *started* from inside
starts inside, as a child process does). Two things made while inside stay
bound to the namespace after the switch back, which is what makes this both fast and
simple:

- a socket (netlink, packet, TCP) belongs to the namespace it was created in: open one per
  namespace and use it from anywhere;
- a child process starts in the namespace of the thread that spawned it. Spawning from inside
  lets subprocess use vfork (no copy of the parent's page tables, no extra exec of a helper
  such as nsenter), which bench/netns_exec.py measured as the fastest way by far, most of all
  from a big process; see `popen`.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import functools
import os
import stat
from _socket import AF_INET, SOCK_STREAM
from collections.abc import Iterator, Sequence

# subprocess and socket are imported where used: the CNI plugin imports this module at every
# pod's start, never runs a command or opens a socket through it, and their imports (with
# selectors, signal and their enum conversions) would cost it more than its own work.
TYPE_CHECKING = False  # without importing typing; type checkers treat it as true
if TYPE_CHECKING:
    import socket as _socket
    import subprocess

NETNS_DIR = "/run/netns"  # where `ip netns add NAME` puts a named namespace
CLONE_NEWNET = 0x40000000
NS_GET_NSTYPE = 0xB703  # _IO(0xb7, 0x3) in linux/nsfs.h: which kind of namespace an nsfs fd is

# A namespace: a name under /run/netns, a path, an open fd, or None for the caller's own.
Target = str | int | None

_nsfs_dev: int | None = None


def _libc_setns():
    """setns(2) as a callable (fd, nstype) -> None that raises OSError.

    os.setns where Python has it (3.12+). Before that, libc's own through _ctypes, the C core
    of ctypes, used the way ctypes.CDLL(None, use_errno=True) uses it: importing the ctypes
    package builds dozens of types (and imports struct), which cost a CNI plugin's start
    more than all the netlink work of an ADD (bench/cni.py, standalone)."""
    if hasattr(os, "setns"):
        return os.setns
    import _ctypes

    class CInt(_ctypes._SimpleCData):  # ctypes.c_int: a direct subclass, so results come back as int
        _type_ = "i"

    class LibcFunction(_ctypes.CFuncPtr):
        _flags_ = _ctypes.FUNCFLAG_CDECL | _ctypes.FUNCFLAG_USE_ERRNO
        _restype_ = CInt

    class Process:  # what CFuncPtr looks symbols up in: the program and its libraries (libc)
        _handle = _ctypes.dlopen(None, _ctypes.RTLD_LOCAL)  # type: ignore[arg-type]  # None: as CDLL(None)

    libc_setns = LibcFunction(("setns", Process))  # type: ignore[arg-type]  # any object with a _handle

    def setns(fd: int, nstype: int) -> None:
        if libc_setns(fd, nstype) != 0:
            err = _ctypes.get_errno()
            raise OSError(err, os.strerror(err))

    return setns


_setns_syscall = _libc_setns()


class NamespaceError(OSError):
    """A namespace that cannot be opened, is not a network namespace, or cannot be entered."""

    def __init__(self, path: str, reason: str, err: int | None = errno.EINVAL) -> None:  # err: OSError.errno's
        super().__init__(err, reason)
        self.path = path
        self.reason = reason

    def __str__(self) -> str:
        return f"network namespace {self.path!r}: {self.reason}"


def path_of(target: str) -> str:
    """A bare name is one of `ip netns`'s (/run/netns/NAME); anything with a slash is a path."""
    return target if "/" in target else os.path.join(NETNS_DIR, target)


def _nsfs() -> int:
    # every namespace file (/proc/*/ns/*, and the bind mounts of them under /run/netns) lives
    # on the one nsfs filesystem; its device number tells a namespace from an ordinary file
    global _nsfs_dev
    if _nsfs_dev is None:
        _nsfs_dev = os.stat("/proc/self/ns/net").st_dev
    return _nsfs_dev


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISFIFO, "a FIFO"), (stat.S_ISDIR, "a directory"), (stat.S_ISSOCK, "a socket"),
                       (stat.S_ISCHR, "a device"), (stat.S_ISBLK, "a device")):  # fmt: skip
        if test(mode):
            return name
    return "an ordinary file"


def open(target: str) -> int:  # shadows the builtin on purpose: callers write netns.open(path)
    """An fd of the network namespace at `target` (close-on-exec; the caller closes it).

    Anything else is refused without side effects: the path is checked before it is opened,
    and opened non-blocking, so a FIFO put there (or swapped in between) can never hang us."""
    path = path_of(target)
    try:
        st = os.stat(path)
    except OSError as e:
        reason = "does not exist" if e.errno == errno.ENOENT else e.strerror or str(e)
        raise NamespaceError(path, reason, e.errno) from None
    if not stat.S_ISREG(st.st_mode) or st.st_dev != _nsfs():
        raise NamespaceError(path, f"not a network namespace ({_kind(st.st_mode)})")
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
    except OSError as e:
        raise NamespaceError(path, e.strerror or str(e), e.errno) from None
    try:
        st = os.fstat(fd)
        if st.st_dev != _nsfs():
            raise NamespaceError(path, f"not a network namespace ({_kind(st.st_mode)})")
        if fcntl.ioctl(fd, NS_GET_NSTYPE) != CLONE_NEWNET:
            raise NamespaceError(path, "a namespace of another kind, not a network namespace")
    except BaseException as e:
        os.close(fd)
        if isinstance(e, OSError) and not isinstance(e, NamespaceError):
            raise NamespaceError(path, f"not a network namespace ({e.strerror})", e.errno) from None
        raise
    return fd


def _setns(fd: int, path: str) -> None:
    try:
        _setns_syscall(fd, CLONE_NEWNET)
    except OSError as e:
        raise NamespaceError(path, f"cannot enter: {os.strerror(e.errno or 0)}", e.errno) from None


def enter(target: str | int) -> None:
    """Move the calling thread into the namespace for good: for a forked child before it
    serves, or a process that lives in one namespace. Everywhere else use `entered`."""
    if isinstance(target, int):
        _setns(target, f"fd {target}")
        return
    fd = open(target)
    try:
        _setns(fd, path_of(target))
    finally:
        os.close(fd)


@contextlib.contextmanager
def entered(target: Target) -> Iterator[None]:
    """Run the block with this thread in the namespace, then return it to where it was,
    whatever the block raised. None is the thread's own namespace (nothing to do)."""
    if target is None:
        yield
        return
    if isinstance(target, int):
        fd, path, owned = target, f"fd {target}", False
    else:
        fd, path, owned = open(target), path_of(target), True
    try:
        home = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        try:
            _setns(fd, path)
            try:
                yield
            finally:
                # Going back to an fd we hold cannot fail short of the process dropping
                # CAP_SYS_ADMIN inside the block; if it does, this thread would go on in the
                # wrong namespace, so that is an error nobody may swallow by accident.
                _setns(home, "/proc/thread-self/ns/net (this thread's own, to return to)")
        finally:
            os.close(home)
    finally:
        if owned:
            os.close(fd)


@functools.cache
def _ip_tool() -> str:
    import shutil

    return shutil.which("ip") or "ip"


def popen(target: Target, args: Sequence[str], *, etc: bool = False, **kw) -> subprocess.Popen:
    """Start `args` inside the namespace; keyword arguments are subprocess.Popen's.

    The child is spawned while this thread is inside, so it starts there and subprocess may
    use vfork. (A preexec_fn that calls setns forbids vfork, nsenter adds an exec, and
    `ip netns exec` adds an exec plus a mount namespace: all measured slower.)

    etc=True runs through `ip netns exec NAME` instead, for a named namespace only: that also
    gives the child a mount namespace of its own with /etc/netns/NAME/* bind-mounted over
    /etc and /sys remounted for the namespace, which a person's interactive command in a pod
    may expect (its own resolv.conf or hosts; /sys/class/net listing the pod's links)."""
    import subprocess

    if etc:
        if not isinstance(target, str) or "/" in target:
            raise NamespaceError(str(target), "etc=True needs a namespace named under /run/netns")
        # `ip` found on this process's PATH: an `env` given is the command's (a busybox pod's
        # PATH has busybox's own `ip` first), not the tool's that enters the namespace
        return subprocess.Popen([_ip_tool(), "netns", "exec", target, *args], **kw)
    with entered(target):
        return subprocess.Popen(list(args), **kw)


def run(
    target: Target,
    args: Sequence[str],
    *,
    input: str | bytes | None = None,
    timeout: float | None = None,
    check: bool = False,
    etc: bool = False,
    **kw,
) -> subprocess.CompletedProcess:
    """subprocess.run inside the namespace: same arguments, same result and exceptions."""
    import subprocess

    if input is not None:
        kw["stdin"] = subprocess.PIPE
    if kw.pop("capture_output", False):
        kw["stdout"] = kw["stderr"] = subprocess.PIPE
    with popen(target, args, etc=etc, **kw) as proc:
        try:
            out, err = proc.communicate(input, timeout=timeout)
        except BaseException:
            proc.kill()
            proc.wait()
            raise
    result = subprocess.CompletedProcess(list(args), proc.returncode, out, err)
    if check:
        result.check_returncode()
    return result


def socket(target: Target, family: int = AF_INET, type: int = SOCK_STREAM, proto: int = 0) -> _socket.socket:
    """A socket created inside the namespace; it stays bound to it wherever it is used."""
    import socket as _socket

    with entered(target):
        return _socket.socket(family, type, proto)
