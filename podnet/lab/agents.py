"""What every lab runs besides pods, kept running by the lab controller (its supervisor):

- etcd (Debian's etcd-server) in the lab namespace, data under the lab's state directory:
  the cluster's store, as on a real cluster;
- one `podnet agent` per node namespace against it: the same daemon a real node runs. It
  leases the node's pod subnet, routes to the other nodes' subnets (host-gw or vxlan),
  writes the node's CNI conflist and launchers and serves their calls in-process, and runs
  the service proxy fed from the Services and EndpointSlices in etcd.

The lab programs nothing in a node itself. What it reads back from an agent is what a
kubelet reads: the conflist the agent wrote (it names the node's subnet), and /healthz, whose
`syncedRevision` says up to which etcd revision the node's rules are programmed: a pod is
available once every node has programmed the revision that made it an endpoint.

Each process's pid file holds its pid and start time (podnet.lab.pids), so a controller
taking over adopts the processes its predecessor started, and no signal ever reaches a
process that merely reuses a pid.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field

from podnet.lab import pids
from podnet.lab.agent_health import Question
from podnet.lab.node import Namespace
from podnet.lab.state import LabFiles

RESTART_EVERY = 2.0  # a process that keeps failing is started again at most this often
HEALTHZ_PORT = 10256  # the agent's --healthz-bind-address port, kube-proxy's
ETCD_CLIENT_PORT = 2379  # etcd's own ports: the lab namespace is the lab's alone
ETCD_PEER_PORT = 2380
ETCD_PREFIX = "/podnet"
LEASE_TTL = 10  # a node gone for good loses its routes on the others within this
# a lab's endpoints change in bursts a person watches: program them quickly (kube-proxy's 1s
# default would make every scale or rollout wait a second longer per step)
MIN_SYNC_PERIOD = "200ms"
# how often an agent that has not yet programmed the last write is asked again (/healthz) ...
POLL_EVERY = 0.05
# ... and while many pods start: then only the last batch decides when the lab serves, and
# each question costs the controller and the agent a moment of CPU the pods need
POLL_EVERY_STARTING = 0.5


def log(msg: str) -> None:
    print(f"{time.strftime('%H:%M:%S')} {msg}", flush=True)


def etcd_binary() -> str:
    return shutil.which("etcd") or "/usr/bin/etcd"


def agent_command() -> list[str]:
    """`podnet agent`, as its own entry point: the lab's interpreter, without the rest of the
    podnet command line to import."""
    return [sys.executable, "-m", "podnet.agent"]


@dataclass
class Supervised:
    """One long-lived process in a namespace: started, watched, started again when it exits."""

    what: str  # "etcd" or "agent-<node>": names its pid file and log
    netns: str
    args: list[str]
    files: LabFiles
    proc: subprocess.Popen | None = None
    adopted: tuple[int, int] | None = None  # (pid, start time) of a predecessor's child
    last_start: float = -RESTART_EVERY
    starts: int = 0
    env: dict[str, str] = field(default_factory=dict)

    @property
    def pidfile(self) -> str:
        return self.files.path(f"{self.what}.pid")

    @property
    def log_path(self) -> str:
        return self.files.path(f"{self.what}.log")

    def pid(self) -> int | None:
        if self.proc is not None:
            return self.proc.pid if self.proc.poll() is None else None
        if self.adopted is not None and pids.matches(*self.adopted):
            return self.adopted[0]
        return None

    def running(self) -> bool:
        return self.pid() is not None

    def adopt(self) -> int | None:
        """Take over the process the pid file names, if that very process still runs."""
        rec = pids.read_record(self.pidfile)
        if rec is not None and pids.matches(*rec):
            self.adopted = rec
            return rec[0]
        return None

    def keep_running(self, now: float) -> bool:
        """Start the process if it is not running (not more often than RESTART_EVERY)."""
        if self.running():
            return False
        if self.proc is not None or self.adopted is not None:
            code = self.proc.returncode if self.proc is not None else "?"
            log(f"{self.what} exited ({code}); starting it again")
            self.proc, self.adopted = None, None
        if now - self.last_start < RESTART_EVERY:
            return False
        env = {**os.environ, **self.env} if self.env else None
        with open(self.log_path, "a") as out:
            self.proc = Namespace(self.netns).popen(
                self.args, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env
            )
        pids.write(self.pidfile, self.proc.pid)
        self.last_start, self.starts = now, self.starts + 1
        return True

    def kill(self, sig: int = signal.SIGKILL) -> None:
        pid = self.pid()
        if pid is not None:
            rec = self.adopted or (pid, pids.start_time(pid) or 0)
            pids.send(*rec, sig)
        if self.proc is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=5)


class NodeAgents:
    """etcd and the node agents of one lab, and what the lab learns from them."""

    def __init__(self, files: LabFiles, network: dict):
        self.files = files
        self.network = network
        self.nodes: dict[str, dict] = {n["name"]: n for n in network["nodes"]}
        host = network["etcd"]["host"]
        self.store = f"etcd://{host}:{ETCD_CLIENT_PORT}{ETCD_PREFIX}"
        client, peer = f"http://{host}:{ETCD_CLIENT_PORT}", f"http://127.0.0.1:{ETCD_PEER_PORT}"
        self.etcd = Supervised(
            "etcd",
            network["netns"],
            [
                etcd_binary(),
                "--name=lab",
                f"--data-dir={files.path('etcd')}",
                f"--listen-client-urls={client}",
                f"--advertise-client-urls={client}",
                f"--listen-peer-urls={peer}",
                f"--initial-advertise-peer-urls={peer}",
                f"--initial-cluster=lab={peer}",
                "--log-level=error",
            ],
            files,
        )
        self.agents = {name: Supervised(f"agent-{name}", n["netns"], self.agent_args(n), files)
                       for name, n in self.nodes.items()}  # fmt: skip
        self.all_healthy = False  # every node's agent has answered /healthz 200 (once)
        # node -> the highest syncedRevision its agent reported: rules stay in the kernel when an
        # agent restarts, and the new one lists everything before it reports anything
        self.synced: dict[str, int] = {}
        self.healthy: dict[str, bool] = {}  # node -> its last answer was 200
        self.asking: dict[str, Question] = {}  # node -> the /healthz question in flight
        self.last_asked: dict[str, float] = {}
        self.conflists: dict[str, tuple[int, dict]] = {}  # node -> (mtime, the netconf from it)

    def agent_args(self, node: dict) -> list[str]:
        net, d = self.network, self.node_dir(node["name"])
        return [
            *agent_command(),
            "--node-name", node["name"],
            "--node-ip", node["ip"],
            "--store", self.store,
            "--objects", "etcd",
            "--cluster-cidr", net["clusterCIDR"],
            "--node-mask-size", str(net["nodeSubnetSize"]),
            "--service-cidr", net["serviceCIDR"],
            "--backend", net["backend"],
            "--proxy-mode", net["proxyMode"],
            "--cni-bin-dir", os.path.join(d, "bin"),
            "--cni-conf-dir", os.path.join(d, "net.d"),
            "--cni-data-dir", os.path.join(d, "ipam"),
            "--lease-ttl", str(LEASE_TTL),
            "--min-sync-period", MIN_SYNC_PERIOD,
            "--metrics-bind-address", "127.0.0.1:10249",
            "--healthz-bind-address", f"{node['ip']}:{HEALTHZ_PORT}",
        ]  # fmt: skip

    def node_dir(self, node: str) -> str:
        return self.files.path("nodes", node)

    # -- supervising --------------------------------------------------------------------
    def adopt(self) -> list[int]:
        """A controller taking over: the processes its predecessor started, still running."""
        return [pid for s in (self.etcd, *self.agents.values()) if (pid := s.adopt()) is not None]

    def keep_running(self, now: float) -> bool:
        """etcd and every agent running; True when one was (re)started.

        All start at once: etcd answers within about a second, and an agent spends about as
        long importing before it asks for its lease (and asks again until etcd answers), so
        waiting for etcd first would only add the two up."""
        started = self.etcd.keep_running(now)
        for agent in self.agents.values():
            started |= agent.keep_running(now)
        return started

    def observe(self, now: float, wanted: int, starting: bool) -> bool:
        """Take in the agents' answers that arrived, and ask again those that have not yet
        reported `wanted` (the revision of the lab's last write); True when one moved on."""
        moved = False
        for name, question in list(self.asking.items()):
            health = question.step(now)
            if health is None:
                continue
            del self.asking[name]
            self.healthy[name] = health.status == 200
            if health.synced_revision > self.synced.get(name, 0):
                self.synced[name], moved = health.synced_revision, True
        if not self.all_healthy and all(self.healthy.get(n) for n in self.nodes):
            self.all_healthy = True
            log("every node's agent is healthy (subnet, routes and Service rules in sync)")
        every = POLL_EVERY_STARTING if starting else POLL_EVERY
        for name, node in self.nodes.items():
            behind = self.synced.get(name, 0) < wanted or not self.all_healthy
            if behind and name not in self.asking and now - self.last_asked.get(name, -every) >= every:
                self.asking[name], self.last_asked[name] = Question(node["ip"], HEALTHZ_PORT, now), now
        return moved

    def wait_fds(self) -> list[int]:
        """The questions in flight: the controller's poll wakes when an answer arrives."""
        return [q.fileno() for q in self.asking.values() if q.answer is None]

    def synced_revision(self) -> int:
        """The etcd revision every node has programmed (0 until each has reported one)."""
        return min((self.synced.get(n, 0) for n in self.nodes), default=0)

    def state(self, node: str) -> str:
        return "running" if self.agents[node].running() else "down"

    # -- what a kubelet reads from its node ---------------------------------------------
    def netconf(self, node: str) -> dict | None:
        """The network config a runtime gives podnet-cni on this node: the first plugin of
        the conflist the node's agent wrote (as libcni builds it), or None before the agent
        has leased a subnet and written one."""
        path = os.path.join(self.node_dir(node), "net.d", "10-podnet.conflist")
        try:
            mtime = os.stat(path).st_mtime_ns
        except FileNotFoundError:
            return None
        cached = self.conflists.get(node)
        if cached is None or cached[0] != mtime:
            with open(path) as f:
                conflist = json.load(f)
            conf = {"cniVersion": conflist["cniVersion"], "name": conflist["name"], **conflist["plugins"][0]}
            self.conflists[node] = cached = (mtime, conf)
        return cached[1]

    def cni_bin(self, node: str) -> str:
        return os.path.join(self.node_dir(node), "bin")

    def subnet(self, node: str) -> str:
        conf = self.netconf(node)
        return conf["ipam"]["ranges"][0][0]["subnet"] if conf else ""
