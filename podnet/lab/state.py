"""The files a lab keeps between commands, under /run/podnet/labs/<lab>/.

Why files and a controller daemon: a lab must outlive the command that made it, and every
later command (`get`, `scale`, `rollout`) is a fresh process. The desired state is a file the
commands change under a lock; one long-lived controller (it runs inside the lab's own
namespace, so `lab down` finds and kills it like everything else) reconciles the kernel and
the pods towards it and publishes what it observes in status.json. Nothing here is needed
to tear a lab down: `lab down` works from names alone.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass

from podnet.lab import names, pids, spec
from podnet.progress import Meter


class LabNotFound(RuntimeError):
    pass


def write_json(path: str, data, compact: bool = False) -> None:
    """Atomically (a reader sees the old file or the new one). compact: one line, written by
    json's C encoder -- ten times faster than the indented form, for the big files written often."""
    text = (
        json.dumps(data, sort_keys=True, separators=(",", ":"))
        if compact
        else json.dumps(data, indent=1, sort_keys=True)
    )
    tmp = f"{path}.tmp.{os.getpid()}"
    with open(tmp, "w") as f:
        f.write(text + "\n")
    os.replace(tmp, path)


def read_json(path: str, default=None):
    try:
        with open(path) as f:
            return json.load(f)
    except FileNotFoundError:
        return default


@dataclass(frozen=True)
class LabFiles:
    lab: str

    @property
    def root(self) -> str:
        return names.state_dir(self.lab)

    def path(self, *parts: str) -> str:
        return os.path.join(self.root, *parts)

    @property
    def desired(self) -> str:
        return self.path("desired.json")

    @property
    def status(self) -> str:
        return self.path("status.json")

    @property
    def checkpoint(self) -> str:
        return self.path("checkpoint.json")

    @property
    def network(self) -> str:
        return self.path("network.json")

    @property
    def objects_dir(self) -> str:
        return self.path("objects")

    @property
    def requests_dir(self) -> str:
        return self.path("requests")

    @property
    def pidfile(self) -> str:
        return self.path("controller.pid")

    @property
    def log(self) -> str:
        return self.path("controller.log")

    def exists(self) -> bool:
        return os.path.exists(self.network)

    @contextlib.contextmanager
    def locked(self):
        with open(self.path("lock"), "a") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(f, fcntl.LOCK_UN)

    # -- desired state ------------------------------------------------------------------
    def read_desired(self) -> dict:
        data = read_json(self.desired)
        if data is None:
            raise LabNotFound(f"lab {self.lab!r} is not up (no {self.desired})")
        return data

    def desired_spec(self) -> spec.LabSpec:
        return spec.parse(self.read_desired()["spec"])

    def change(self, fn) -> int:
        """Apply fn(desired dict) -> None under the lock; bump the generation; return it."""
        with self.locked():
            data = self.read_desired()
            fn(data)
            spec.parse(data["spec"])  # never store a state the controller cannot read
            data["generation"] += 1
            write_json(self.desired, data)
            return data["generation"]

    def request_delete(self, pod: str) -> None:
        os.makedirs(self.requests_dir, exist_ok=True)
        with open(os.path.join(self.requests_dir, f"delete.{pod}"), "w"):
            pass

    # -- observed state -----------------------------------------------------------------
    def read_status(self) -> dict:
        return read_json(self.status, {}) or {}

    def controller_pid(self) -> int | None:
        """The controller's pid, when the process the pid file names (pid and start time)
        still runs: a pid reused by another program is no controller."""
        return pids.read(self.pidfile)

    def wait(
        self,
        until: Callable[[dict], bool],
        timeout: float,
        measure: Callable[[dict], tuple[int, int, str] | None] | None = None,
        meter: Meter | None = None,
        interval: float = 0.1,
    ) -> dict:
        """Poll status.json until until(status) is true; measure(status) -> (done, total, note)
        says how far it is, for the meter (None: nothing to say yet)."""
        deadline = time.monotonic() + timeout
        while True:
            status = self.read_status()
            done = bool(status) and until(status)
            if measure and meter:
                progress = measure(status)
                if progress:
                    meter.update(*progress)
            if done:
                return status
            if status.get("fatal"):
                raise RuntimeError(f"lab controller failed: {status['fatal']}")
            if self.controller_pid() is None and os.path.exists(self.pidfile):
                raise RuntimeError(f"lab controller is not running (see {self.log})")
            # reading a status of hundreds of pods costs: poll more slowly as the wait goes on
            # (a fifth of a second at most: `lab up` waits this long for the last change)
            interval = min(0.2, interval * 1.1)
            if time.monotonic() > deadline:
                raise TimeoutError(f"lab {self.lab!r}: gave up waiting after {timeout:.0f}s (see {self.log})")
            time.sleep(interval)
