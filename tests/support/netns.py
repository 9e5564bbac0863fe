"""Test namespaces: made with unique names, always removed, with everything running in them.

Every namespace a test makes is registered here; the session ends with a check that none
outlived its test (see conftest.py).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
import uuid
from dataclasses import dataclass

import netns

CREATED: set[str] = set()


def sh(
    *args: str, check: bool = True, input: str | None = None, env=None, timeout: float = 60
) -> subprocess.CompletedProcess:
    return subprocess.run(args, check=check, capture_output=True, text=True, input=input, env=env, timeout=timeout)


@dataclass(frozen=True)
class Namespace:
    name: str

    @property
    def path(self) -> str:
        return f"/var/run/netns/{self.name}"

    # Commands run inside through podnet's own primitive (spawned from a thread inside the
    # namespace), the fastest way measured by bench/netns_exec.py.
    def run(
        self, *args: str, check: bool = True, input: str | None = None, env=None, timeout: float = 60
    ) -> subprocess.CompletedProcess:
        return netns.run(self.name, args, check=check, capture_output=True, text=True, input=input, env=env,
                         timeout=timeout)  # fmt: skip

    def popen(self, *args: str, **kw) -> subprocess.Popen:
        return netns.popen(self.name, args, **kw)

    def ip(self, *args: str, check: bool = True) -> str:
        return sh("ip", "-n", self.name, *args, check=check).stdout

    def links(self) -> list[str]:
        return sorted(line.split(":")[1].strip().split("@")[0] for line in self.ip("-o", "link").splitlines())

    def routes(self) -> str:
        return self.ip("route") + self.ip("-6", "route")

    def settle_ipv6(self, timeout: float = 10) -> None:
        """Wait until no IPv6 address here is tentative. A link-local address stays tentative
        for a second or two after its link comes up, and until then the kernel sends no
        neighbour solicitation for a packet it forwards out of that link (ndisc_send_ns needs a
        usable link-local source), so the first forwarded packet is lost."""
        deadline = time.monotonic() + timeout
        while self.ip("-6", "addr", "show", "tentative").strip():
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.name}: IPv6 addresses still tentative after {timeout} s")
            time.sleep(0.05)


def create(prefix: str = "pnt") -> Namespace:
    name = f"{prefix}-{uuid.uuid4().hex[:8]}"
    sh("ip", "netns", "add", name)
    CREATED.add(name)
    sh("ip", "-n", name, "link", "set", "lo", "up")
    return Namespace(name)


def destroy(ns: Namespace) -> None:
    """Kill what runs inside, then delete the namespace (safe when already gone)."""
    pids = sh("ip", "netns", "pids", ns.name, check=False).stdout.split()
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(int(pid), signal.SIGKILL)
    sh("ip", "netns", "del", ns.name, check=False)
    CREATED.discard(ns.name)


def leftovers() -> list[str]:
    existing = set(sh("ip", "netns", "list", check=False).stdout.split())
    return sorted(name for name in CREATED if name in existing)
