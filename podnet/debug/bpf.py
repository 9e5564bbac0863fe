"""Capture filters: a tcpdump expression compiled to classic BPF (by tcpdump itself, so the
language is exactly tcpdump's) and attached to a packet socket, so the kernel drops what
the filter rejects before it is copied to us."""

from __future__ import annotations

import ctypes
import socket
import subprocess

SO_ATTACH_FILTER = 26


class FilterError(ValueError):
    pass


def compile_filter(expression: str) -> list[tuple[int, ...]]:
    """tcpdump -ddd: the instruction count, then one `code jt jf k` line per instruction."""
    r = subprocess.run(["tcpdump", "-ddd", "-y", "EN10MB", expression], capture_output=True, text=True)
    if r.returncode != 0:
        raise FilterError(f"--filter: {expression!r} is not a valid capture filter: {r.stderr.strip()}")
    lines = r.stdout.split("\n")
    count = int(lines[0])
    return [tuple(int(x) for x in line.split()) for line in lines[1 : 1 + count]]


class _Insn(ctypes.Structure):
    _fields_ = [("code", ctypes.c_uint16), ("jt", ctypes.c_uint8), ("jf", ctypes.c_uint8), ("k", ctypes.c_uint32)]


class _Prog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_uint16), ("filter", ctypes.POINTER(_Insn))]


def attach(sock: socket.socket, program: list[tuple[int, ...]]) -> None:
    insns = (_Insn * len(program))(*[_Insn(*i) for i in program])
    prog = _Prog(len(program), insns)
    raw = ctypes.string_at(ctypes.addressof(prog), ctypes.sizeof(prog))  # struct sock_fprog
    sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, raw)
