"""A lab pod and the phases it passes through.

Pending -> Attaching (netns made, `podnet-cni ADD` running in the node) -> Starting
(workload forked into the pod, waiting for it to bind) -> Running (an endpoint)
-> Terminating (endpoint marked terminating, drained, then SIGTERM) -> Deleting
(`podnet-cni DEL`, netns removed) -> gone.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from podnet.lab import pids

PENDING, ATTACHING, STARTING, RUNNING, TERMINATING, DELETING = (
    "Pending",
    "Attaching",
    "Starting",
    "Running",
    "Terminating",
    "Deleting",
)
LIVE = (PENDING, ATTACHING, STARTING, RUNNING)
# what a pod is, as opposed to where it is in its life: the fields a checkpoint keeps
IDENTITY: tuple[str, ...] = ("name", "deployment", "template", "version", "labels", "node", "kind", "port", "command")
IDENTITY += ("backend", "namespace", "env")


@dataclass
class Pod:
    name: str
    deployment: str
    template: str
    version: str
    labels: dict[str, str]
    node: str
    kind: str
    port: int
    command: tuple[str, ...] = ()
    backend: str | None = None
    namespace: str = "default"
    env: dict[str, str] = field(default_factory=dict)
    phase: str = PENDING
    ip: str | None = None
    pid: int | None = None
    pid_start: int = 0  # the process's start time (/proc/PID/stat): with the pid, names the process
    proc: Any = None  # Popen of the CNI call in flight, or of a command workload
    ready_fd: int | None = None
    created: float = field(default_factory=time.time)
    ready_at: float | None = None
    published_at: float | None = None  # when etcd was told it is ready (endpointslices.py)
    published_revision: int = 0  # ... the store revision of that write (0: not yet written)
    term_at: float | None = None
    sigterm_at: float | None = None
    exited: bool = False
    doomed: bool = False  # terminate as soon as it is attached
    adopted: bool = False  # left by an earlier controller: not our child, watched by pid
    del_done: bool = False  # CNI DEL has answered (or had nothing to undo)
    unready: bool = False  # running, but its readiness probe fails (or has not passed yet)
    restarts: int = 0  # workload restarts in place (a failed liveness probe)
    restarting: bool = False  # killed by the liveness probe: start it again once reaped
    netns_made: bool = False  # its namespace exists (kubelet.make_namespaces)
    marks: dict[str, float] = field(default_factory=dict)  # when it reached each step (kubelet.Timings)

    @property
    def deployment_key(self) -> str:
        return f"{self.namespace}/{self.deployment}"

    @property
    def ready(self) -> bool:
        return self.phase == RUNNING and not self.unready

    def available(self, synced_revision: int) -> bool:
        """Ready, and in every node's rules: every node's agent reports (/healthz) that it has
        programmed the etcd revision that published this pod as ready, or a later one."""
        if not self.ready or self.ready_at is None or self.published_at is None or self.published_at < self.ready_at:
            return False
        return 0 < self.published_revision <= synced_revision

    def record(self) -> dict[str, Any]:
        """What a controller taking over needs to carry on with this pod."""
        out: dict[str, Any] = {k: getattr(self, k) for k in IDENTITY}
        out["command"] = list(self.command)
        out["env"] = dict(self.env)
        out.update(phase=self.phase, ip=self.ip, pid=self.pid, pidStart=self.pid_start, created=self.created)
        return out

    @classmethod
    def from_record(cls, r: dict[str, Any]) -> Pod:
        pod = cls(**{k: r[k] for k in IDENTITY if k in r}, ip=r.get("ip"), pid=r.get("pid"), phase=r["phase"])
        pod.command = tuple(pod.command or ())
        pod.created = r.get("created", pod.created)
        pod.pid_start = r.get("pidStart", 0)
        return pod


def alive(pid: int, started: int = 0) -> bool:
    """Running, and not a zombie (a dead process its new parent has not reaped yet); with
    `started`, only if it is the process that started then (not a newcomer on a reused pid)."""
    now = pids.start_time(pid)
    return now is not None and (not started or now == started)


def log(msg: str) -> None:
    """A line of the controller's log (controller.log in the lab's state directory)."""
    print(f"{time.strftime('%H:%M:%S')} {msg}", flush=True)
