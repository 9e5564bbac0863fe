"""A namespace a lab made, and the commands run in it: argument lists that return their
output and status (never interactive shells, as in mininet's `Node.cmd` done right)."""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass

import netns
from podnet.lab import names


@dataclass(frozen=True)
class Result:
    args: tuple[str, ...]
    status: int
    out: str
    err: str

    @property
    def ok(self) -> bool:
        return self.status == 0


class CommandFailed(RuntimeError):
    def __init__(self, result: Result):
        super().__init__(f"{' '.join(result.args)}: exit {result.status}: {(result.err or result.out).strip()}")
        self.result = result


def run(
    args: list[str] | tuple[str, ...],
    input: str | None = None,
    check: bool = True,
    timeout: float = 60,
    namespace: str | None = None,
) -> Result:
    """The command in `namespace` (a name under /run/netns), or in ours when None."""
    p = netns.run(namespace, args, input=input, capture_output=True, text=True, timeout=timeout)
    result = Result(tuple(args), p.returncode, p.stdout, p.stderr)
    if check and not result.ok:
        raise CommandFailed(result)
    return result


def ip_batch(lines: list[str], netns: str | None = None, check: bool = True) -> Result:
    """Many `ip` commands in one process: one exec instead of hundreds."""
    args = ["ip", *(["-n", netns] if netns else []), "-force", "-batch", "-"]
    return run(args, input="".join(line + "\n" for line in lines), check=check)


@dataclass(frozen=True)
class Namespace:
    name: str

    @property
    def path(self) -> str:
        return os.path.join(names.NETNS_DIR, self.name)

    def exists(self) -> bool:
        return os.path.exists(self.path)

    def run(self, args: list[str] | tuple[str, ...], check: bool = False, **kw) -> Result:
        return run(args, check=check, namespace=self.name, **kw)

    def ip(self, *args: str, check: bool = True) -> Result:
        return run(["ip", "-n", self.name, *args], check=check)

    def popen(self, args: list[str], **kw) -> subprocess.Popen:
        """Start a process inside the namespace (keyword arguments are subprocess.Popen's)."""
        return netns.popen(self.name, args, **kw)

    def enter(self) -> None:
        """Move the calling thread into the namespace for good (for forked workload processes)."""
        netns.enter(self.name)
