"""The nftables executor: one `nft -f -` run per transaction (atomic: the kernel applies all of
it or none), and clean-up of podnet's tables and nothing else."""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import fcntl
import os
import subprocess
from collections.abc import Callable, Iterable

from netns import popen as popen_in
from netns import run as run_in
from proxy.nftables.layout import FAMILIES, TABLE


class NftError(RuntimeError):
    pass


class _Libnftables:
    """nft's own library, loaded in-process: a small transaction then costs no fork and exec
    of nft (most of a one-endpoint update's time otherwise). Its netlink socket belongs to the
    namespace the process is in, which is where the daemon's rules go."""

    def __init__(self) -> None:
        lib = ctypes.CDLL(ctypes.util.find_library("nftables") or "libnftables.so.1")
        lib.nft_ctx_new.restype = ctypes.c_void_p
        lib.nft_ctx_new.argtypes = [ctypes.c_uint32]
        for fn in ("nft_ctx_buffer_output", "nft_ctx_buffer_error"):
            getattr(lib, fn).argtypes = [ctypes.c_void_p]
        lib.nft_run_cmd_from_buffer.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
        lib.nft_ctx_get_error_buffer.argtypes = [ctypes.c_void_p]
        lib.nft_ctx_get_error_buffer.restype = ctypes.c_char_p
        self.lib = lib
        self.ctx = lib.nft_ctx_new(0)
        lib.nft_ctx_buffer_output(self.ctx)
        lib.nft_ctx_buffer_error(self.ctx)

    def run(self, text: str) -> None:
        if self.lib.nft_run_cmd_from_buffer(self.ctx, text.encode()) != 0:
            err = (self.lib.nft_ctx_get_error_buffer(self.ctx) or b"").decode(errors="replace")
            raise NftError(f"nft failed: {_explain(err)}")


_lib: _Libnftables | None = None


def _library() -> _Libnftables | None:
    global _lib
    if _lib is None:
        try:
            _lib = _Libnftables()
        except OSError:
            return None
    return _lib


def run(text: str, netns: str | None = None) -> None:
    if not text:
        return
    lib = _library() if netns is None else None
    if lib is not None:
        lib.run(text)
        return
    # a namespace other than the process's own (netns) is for tests and benchmarks that drive
    # the proxier in-process; the daemon always works in its own namespace
    r = run_in(netns, ["nft", "-f", "-"], input=text, capture_output=True, text=True)
    if r.returncode != 0:
        raise NftError(f"nft -f failed ({r.returncode}): {_explain(r.stderr)}")


def _explain(stderr: str) -> str:
    # nft prints the offending line and a caret line under it; the first three lines say it all
    return " | ".join(line.strip() for line in stderr.strip().splitlines()[:3])


PIPE_BYTES = 1 << 20  # what Python may write ahead of nft (the kernel's default is 64 KiB)


def run_stream(chunks: Iterable[str], netns: str | None = None, after: Callable[[], None] | None = None) -> None:
    """One `nft -f` run fed piece by piece: nft parses what it has while the rest is made;
    `after` runs once nft has it all, while nft evaluates and commits.

    The text goes through a pipe nft opens as /dev/fd/N, not its standard input: nft 1.0.x
    reads all of `-f -` into memory before it parses a line (to quote lines in its errors),
    so a stream on stdin would be parsed only once it is complete; a named file is parsed as
    it is read. A larger pipe lets the maker run ahead of nft's parse instead of waiting for
    each 64 KiB to be read (the system's pipe-max-size may refuse it: then the default)."""
    read, write = os.pipe()
    with contextlib.suppress(OSError):
        fcntl.fcntl(write, fcntl.F_SETPIPE_SZ, PIPE_BYTES)
    try:
        proc = popen_in(netns, ["nft", "-f", f"/dev/fd/{read}"], stdin=subprocess.DEVNULL,
                        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, pass_fds=(read,))  # fmt: skip
    except BaseException:
        os.close(write)
        raise
    finally:
        os.close(read)
    assert proc.stderr is not None  # a pipe
    pipe = os.fdopen(write, "wb")
    try:
        for piece in chunks:
            if piece:
                pipe.write(piece.encode())
        pipe.close()
    except BrokenPipeError:
        after = None  # nft gave up early; its error follows
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    finally:
        with contextlib.suppress(BrokenPipeError):
            pipe.close()
    try:
        if after is not None:
            after()
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    stderr = proc.stderr.read().decode(errors="replace")
    if proc.wait() != 0:
        raise NftError(f"nft -f failed ({proc.returncode}): {_explain(stderr)}")


def our_tables(netns: str | None = None) -> list[str]:
    """podnet's tables present in this network namespace ("ip podnet", "ip6 podnet")."""
    r = run_in(netns, ["nft", "list", "tables"], capture_output=True, text=True)
    if r.returncode != 0:
        return []
    ours = {f"{f.name} {TABLE}" for f in FAMILIES.values()}
    return [line.removeprefix("table ").strip() for line in r.stdout.splitlines() if line.startswith("table ")
            and line.removeprefix("table ").strip() in ours]  # fmt: skip


def cleanup(netns: str | None = None) -> list[str]:
    tables = our_tables(netns)
    run("".join(f"delete table {t}\n" for t in tables), netns)
    return [f"delete table {t}" for t in tables]


def show(family: int, netns: str | None = None) -> str:
    """`nft list table` of this family's podnet table ("" when there is none)."""
    table = FAMILIES[family].table
    if table not in our_tables(netns):
        return ""
    return run_in(netns, ["nft", "list", "table", *table.split()], capture_output=True, text=True).stdout
