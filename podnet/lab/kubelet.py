"""The pod life cycle: what kubelet and the container runtime do on a real node.

The lab's kubelet makes each pod's namespace, has the node's `podnet-cni` attach it, forks
the workload into it, watches it become ready, and on the way out drains it, signals it and
has `podnet-cni` detach it. A pod whose process dies goes straight to Deleting and counts
as a restart of its Deployment (which then makes a replacement). Kernel work is batched: one
`ip -batch` makes every pending namespace, and at most MAX_CNI plugin calls run at once on
each node (each node's kubelet calls its own agent).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
import traceback
from collections.abc import Callable

import netns
from podnet.lab import names, pids, podlogs, resolv_views, workloads
from podnet.lab.agents import NodeAgents
from podnet.lab.node import Namespace, ip_batch
from podnet.lab.pod import ATTACHING, DELETING, PENDING, RUNNING, STARTING, TERMINATING, Pod, alive, log

DRAIN = float(os.environ.get("PODNET_LAB_DRAIN", "3.0"))  # terminating endpoint -> SIGTERM
GRACE = 10.0  # SIGTERM -> SIGKILL
MAX_CNI = int(os.environ.get("PODNET_LAB_CNI_PARALLEL", "4"))  # per node
NETNS_CHUNK = 32  # namespaces per `ip -batch`
FAILED_ADD_BACKOFF = 1.0
CRASH_WINDOW = 10.0  # a workload exiting this soon after it started crashed (CrashLoopBackOff)
CRASH_BACKOFF, CRASH_BACKOFF_MAX = 10.0, 300.0
DEFAULT_PATH = os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")  # a command pod's, unless it sets one


class Timings:
    """How long pods spend in each step of their start, summed over pods (the controller logs
    it every 100 ready pods): waiting for a CNI slot, in CNI ADD, forking the workload, and
    from the fork to its ready byte."""

    STEPS = (("netns", "cni_start", "wait for CNI"), ("cni_start", "cni_done", "CNI ADD"),
             ("cni_done", "forked", "fork"), ("forked", "ready", "bind"))  # fmt: skip

    def __init__(self) -> None:
        self.sums = dict.fromkeys((s[2] for s in self.STEPS), 0.0)
        self.pods = 0

    def mark(self, pod: Pod, what: str) -> None:
        pod.marks[what] = time.monotonic()
        if what == "ready":
            self.pods += 1
            for a, b, name in self.STEPS:
                if a in pod.marks and b in pod.marks:
                    self.sums[name] += pod.marks[b] - pod.marks[a]

    def summary(self) -> str:
        n = max(1, self.pods)
        return "per pod: " + " ".join(f"{k} {1000 * v / n:.0f}ms" for k, v in self.sums.items())


class Kubelet:
    def __init__(
        self,
        lab: str,
        nodes: dict[str, dict],
        agents: NodeAgents,
        backend_of: Callable[[str], tuple[str, int] | None],
        before_namespaces: Callable[[], None],
    ):
        self.lab = lab
        self.nodes = nodes
        self.agents = agents  # each node's agent: its CNI config and launchers
        self.backend_of = backend_of  # a Service name -> (ClusterIP, port) for the http workload
        # called before namespaces are made, so a controller killed meanwhile knows of every one
        self.before_namespaces = before_namespaces
        self.pods: dict[str, Pod] = {}
        self.restarts: dict[str, int] = {}  # NAMESPACE/deployment -> pods that died or restarted
        self.add_failed_until: dict[str, float] = {}  # NAMESPACE/deployment -> no new pods before then
        self.crashes: dict[str, int] = {}  # NAMESPACE/deployment -> its pods' crashes in a row
        self.resolv_conf: Callable[[Pod], str | None] | None = None  # the pod's /etc/resolv.conf (dns.py)
        self.resolv_views = resolv_views.ResolvViews(lab)  # what a forked workload sees as that file
        self.changed = True
        self.child_exited = True
        self.adopted_left = False
        self.last_adopted_check = 0.0
        self.ready_count = 0
        self.timings = Timings()
        self.netns_batch: tuple[subprocess.Popen, list[Pod]] | None = None  # namespaces being made
        self._free_slots: dict[str, int] | None = None  # CNI slots by node, during advance()

    def starting_count(self) -> int:
        """Pods on their way up (not yet running)."""
        return sum(1 for p in self.pods.values() if p.phase in (PENDING, ATTACHING, STARTING))

    def take_changed(self) -> bool:
        changed, self.changed = self.changed, False
        return changed

    # -- what the Deployments and the person ask for --------------------------------------
    def add(self, pod: Pod) -> None:
        self.pods[pod.name] = pod
        self.changed = True

    def terminate(self, pod: Pod) -> None:
        if pod.phase == PENDING:
            del self.pods[pod.name]
        elif pod.phase == ATTACHING:
            pod.doomed = True
        elif pod.phase == STARTING:
            self._signal(pod, signal.SIGKILL)
            pod.phase, pod.term_at, pod.sigterm_at = TERMINATING, time.monotonic(), time.monotonic()
        elif pod.phase == RUNNING:
            pod.phase, pod.term_at = TERMINATING, time.monotonic()
        self.changed = True

    # -- taking over from a controller that was killed ----------------------------------
    def adopt(self, pods: list[Pod]) -> None:
        """Pods an earlier controller left: those whose process still runs carry on as they were;
        the others are cleaned up through CNI DEL, whatever phase they had reached."""
        from podnet.lab.net import kill_in_namespaces

        abandoned = []
        for pod in pods:
            pod.adopted = True
            self.pods[pod.name] = pod
            if pod.phase == RUNNING and pod.pid and alive(pod.pid, pod.pid_start):
                pod.ready_at = time.monotonic()
                continue
            # a workload forked just before the old controller died may have no pid on record
            abandoned.append(names.pod_netns(self.lab, pod.name))
            pod.exited, pod.phase = True, DELETING
        if abandoned:
            kill_in_namespaces([n for n in abandoned if os.path.exists(os.path.join(names.NETNS_DIR, n))])
        self.adopted_left = True
        prefix = names.pod_netns(self.lab, "")
        strays = [n for n in names.list_netns() if n.startswith(prefix) and n[len(prefix) :] not in self.pods]
        if strays:  # no record of them at all: no owner to ask CNI DEL of
            ip_batch([f"netns del {n}" for n in strays], check=False)
        self.changed = True

    # -- pods through their phases ------------------------------------------------------
    def reap(self) -> None:
        now = time.monotonic()
        watch_adopted = self.adopted_left and now - self.last_adopted_check >= 0.25
        if not self.child_exited and not watch_adopted:
            return
        self.child_exited = False
        if watch_adopted:
            self.last_adopted_check = now
            self.adopted_left = any(p.adopted and not p.exited for p in self.pods.values())
        for pod in self.pods.values():
            if pod.pid is None or pod.exited:
                continue
            exited_by_itself = False  # not killed by a signal: a crash, when it comes soon
            if pod.adopted:
                gone = not alive(pod.pid, pod.pid_start)
            elif pod.kind == "command":
                gone = pod.proc.poll() is not None
                exited_by_itself = gone and pod.proc.returncode >= 0
            else:
                try:
                    done, status = os.waitpid(pod.pid, os.WNOHANG)
                    gone, exited_by_itself = done != 0, done != 0 and os.WIFEXITED(status)
                except ChildProcessError:
                    gone = True
            if gone:
                pod.exited = True
                if pod.restarting and pod.phase in (STARTING, RUNNING):
                    # killed by its liveness probe: kubelet starts the container again, same pod
                    pod.restarting, pod.exited = False, False
                    pod.restarts += 1
                    self.restarts[pod.deployment_key] = self.restarts.get(pod.deployment_key, 0) + 1
                    log(f"pod {pod.name}: restarting its workload (restart {pod.restarts})")
                    self._start_workload(pod)
                elif pod.phase in (STARTING, RUNNING):
                    log(f"pod {pod.name}: process {pod.pid} died; replacing it")
                    self.restarts[pod.deployment_key] = self.restarts.get(pod.deployment_key, 0) + 1
                    self._back_off(
                        pod, exited_by_itself and (pod.ready_at is None or now - pod.ready_at < CRASH_WINDOW)
                    )
                    self._to_deleting(pod)
                elif pod.phase == TERMINATING:
                    self._to_deleting(pod)

    def _back_off(self, pod: Pod, crashed: bool) -> None:
        """kubelet's CrashLoopBackOff: a workload that keeps exiting soon after it starts is
        started again after 10 s, 20 s, 40 s ... 5 min, not at once in a loop. A process killed
        from outside (a person's chaos, a test) is no crash: its replacement starts at once."""
        key = pod.deployment_key
        self.crashes[key] = self.crashes.get(key, 0) + 1 if crashed else 0
        if self.crashes[key] >= 2:  # the first restart is immediate, as kubelet's
            delay = min(CRASH_BACKOFF_MAX, CRASH_BACKOFF * 2 ** (self.crashes[key] - 2))
            self.add_failed_until[key] = time.monotonic() + delay
            log(f"pod {pod.name}: back-off {delay:.0f}s restarting failed workload (CrashLoopBackOff)")

    def advance(self, now: float) -> None:
        self._free_slots = None  # counted again on first use: a mass delete asks once, not per pod
        for pod in list(self.pods.values()):
            if pod.phase == ATTACHING and pod.proc is not None and pod.proc.poll() is not None:
                self._attached(pod)
            elif pod.phase == STARTING:
                self._check_ready(pod, now)
            elif pod.phase == TERMINATING and not pod.exited:
                assert pod.term_at is not None  # set by terminate(), which makes it TERMINATING
                if pod.sigterm_at is None and now - pod.term_at >= DRAIN:
                    self._signal(pod, signal.SIGTERM)
                    pod.sigterm_at = now
                elif pod.sigterm_at is not None and now - pod.sigterm_at >= GRACE:
                    self._signal(pod, signal.SIGKILL)
            elif pod.phase == DELETING:
                self._advance_delete(pod)

    def _attached(self, pod: Pod) -> None:
        proc, pod.proc = pod.proc, None
        out = proc.stdout.read()
        proc.stdout.close()
        if proc.returncode != 0:
            log(f"pod {pod.name}: podnet-cni ADD failed ({proc.returncode}): {out.strip()}")
            self.add_failed_until[pod.deployment_key] = time.monotonic() + FAILED_ADD_BACKOFF
            self._to_deleting(pod)
            return
        self.timings.mark(pod, "cni_done")
        result = json.loads(out)
        pod.ip = result["ips"][0]["address"].split("/")[0]
        if pod.doomed:
            self._to_deleting(pod)
            return
        self._start_workload(pod)

    def _start_workload(self, pod: Pod) -> None:
        ns = Namespace(names.pod_netns(self.lab, pod.name))
        pod.phase = STARTING
        pod.ready_at = None
        self.changed = True
        log_path = podlogs.path(self.lab, pod.name)
        if pod.kind == "command":
            env = {**pod.env, "POD_NAME": pod.name, "POD_IP": pod.ip or "", "POD_NAMESPACE": pod.namespace}
            env.update(POD_VERSION=pod.version, PORT=str(pod.port))
            env["PATH"] = pod.env.get("PATH") or DEFAULT_PATH  # the manifest's, as a container's
            with open(log_path, "ab") as out:
                # etc=True: `ip netns exec` gives it the pod's /etc/netns/<pod>/resolv.conf
                pod.proc = netns.popen(ns.name, list(pod.command), etc=True, env=env, stdin=subprocess.DEVNULL,
                                       stdout=out, stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
            pod.pid = pod.proc.pid
            pod.pid_start = pids.start_time(pod.pid) or 0
            return
        backend: tuple[str, int] | None = None
        if pod.env.get("BACKEND"):  # a manifest's: a name the pod resolves through cluster DNS
            host, _, port = pod.env["BACKEND"].partition(":")
            backend = (host, int(port) if port else 6379)
        elif pod.backend:
            backend = self.backend_of(pod.backend)
        identity = workloads.PodIdentity(pod.name, pod.version, pod.kind, pod.port, backend)
        resolv = self.resolv_conf(pod) if self.resolv_conf else None
        view = self.resolv_views.fd(resolv) if resolv else None
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:  # the pod's process
            try:
                os.close(r)
                signal.signal(signal.SIGCHLD, signal.SIG_DFL)
                signal.signal(signal.SIGTERM, signal.SIG_DFL)
                os.setsid()
                podlogs.redirect(log_path)
                if view is not None:
                    resolv_views.enter(view)
                ns.enter()
                if pod.kind == "dns":
                    from podnet.lab import dns

                    os.environ["PODNET_DNS_RECORDS"] = dns.records_path(self.lab)
                    dns.serve(identity, w)
                workloads.serve(identity, w)
            except BaseException:
                traceback.print_exc()
            os._exit(1)
        os.close(w)
        self.timings.mark(pod, "forked")
        os.set_blocking(r, False)
        pod.pid, pod.ready_fd = pid, r
        pod.pid_start = pids.start_time(pid) or 0

    def _check_ready(self, pod: Pod, now: float) -> None:
        """Started: it listens (a command's port answers; a forked workload wrote its byte).
        Whether it is *ready* (an endpoint) is then the readiness probe's to say (probes.py)."""
        if pod.kind == "command" and pod.port:
            # probed from the pod's node, as a kubelet probes: the lab namespace (where the
            # controller runs) has no route to pods, as the network around real nodes has none
            try:
                with netns.socket(self.nodes[pod.node]["netns"]) as probe:
                    probe.settimeout(0.05)
                    probe.connect((pod.ip, pod.port))
            except OSError:
                return
        elif pod.kind != "command":  # (a command with no port: started as it runs)
            assert pod.ready_fd is not None  # a forked workload is STARTING until it writes here
            try:
                if not os.read(pod.ready_fd, 1):
                    return  # closed without a byte: it died; reap() will see it
            except BlockingIOError:
                return
            os.close(pod.ready_fd)
            pod.ready_fd = None
        pod.phase, pod.ready_at = RUNNING, now
        self.changed = True
        self.ready_count += 1
        log(f"pod {pod.name}: started on {pod.node} ({pod.ip})")
        self.timings.mark(pod, "ready")
        if pod.doomed:
            self.terminate(pod)

    def _signal(self, pod: Pod, sig: int) -> None:
        if pod.pid is None:
            return  # nothing was started (or it was reaped already)
        if pod.adopted:  # not our child: its pid may have been reused since the checkpoint
            pids.send(pod.pid, pod.pid_start, sig)
            return
        with contextlib.suppress(ProcessLookupError):  # our child: its pid is ours until reaped
            os.kill(pod.pid, sig)

    def _to_deleting(self, pod: Pod) -> None:
        if pod.ready_fd is not None:
            os.close(pod.ready_fd)
            pod.ready_fd = None
        if pod.pid and not pod.exited:
            self._signal(pod, signal.SIGKILL)
        pod.phase, pod.proc = DELETING, None
        self.changed = True

    def _advance_delete(self, pod: Pod) -> None:
        if pod.proc is None and not pod.del_done:
            if self.agents.netconf(pod.node) is None:
                pod.del_done = True  # no CNI config ever on this node: nothing was attached
            else:
                if self._free_slots is None:
                    self._free_slots = self._cni_slots()
                if self._free_slots.get(pod.node, 0) <= 0:
                    return
                self._free_slots[pod.node] -= 1
                pod.proc = self._cni(pod, "DEL")
                return
        if pod.proc is not None:
            if pod.proc.poll() is None:
                return
            out = pod.proc.stdout.read()
            pod.proc.stdout.close()
            if pod.proc.returncode != 0:
                log(f"pod {pod.name}: podnet-cni DEL failed: {out.strip()}")
            pod.proc, pod.del_done = None, True
        if pod.pid and not pod.exited:
            return  # still being reaped
        ip_batch([f"netns del {names.pod_netns(self.lab, pod.name)}"], check=False)
        podlogs.remove_etc(self.lab, pod.name)
        del self.pods[pod.name]
        self.changed = True

    # -- kernel work in batches ---------------------------------------------------------
    def make_namespaces(self) -> None:
        """Pending pods' namespaces, NETNS_CHUNK at a time by one `ip -batch` that runs while
        the tick goes on: CNI ADDs of the first chunk start while the next one is made."""
        if self.netns_batch is not None:
            proc, made = self.netns_batch
            if proc.poll() is None:
                return
            self.netns_batch = None
            err = proc.stdout.read() if proc.stdout else ""
            proc.wait()
            if proc.returncode != 0:
                log(f"ip -batch netns add: exit {proc.returncode}: {err.strip()}")
            for p in made:
                self.timings.mark(p, "netns")
                podlogs.write_etc(self.lab, p.name, self.resolv_conf(p) if self.resolv_conf else None)
                p.netns_made = True
            self.changed = True
        pending = [p for p in self.pods.values() if p.phase == PENDING and p.proc is None][:NETNS_CHUNK]
        if not pending:
            return
        for p in pending:
            p.phase = ATTACHING  # waits for its namespace, then for a CNI slot; proc stays None until then
        self.before_namespaces()
        lines = "".join(f"netns add {names.pod_netns(self.lab, p.name)}\n" for p in pending)
        proc = subprocess.Popen(["ip", "-force", "-batch", "-"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True)  # fmt: skip
        assert proc.stdin is not None
        proc.stdin.write(lines)  # NETNS_CHUNK lines: the pipe takes them whole, without blocking the tick
        proc.stdin.close()
        self.netns_batch = (proc, pending)

    def wait_fds(self) -> list[int]:
        """What the controller may sleep on between ticks: a CNI call's or the namespace batch's
        output (closed when it exits), a workload's ready pipe."""
        fds = []
        for p in self.pods.values():
            if p.proc is not None and p.phase in (ATTACHING, DELETING) and p.proc.stdout is not None:
                fds.append(p.proc.stdout.fileno())
            elif p.ready_fd is not None:
                fds.append(p.ready_fd)
        if self.netns_batch is not None and self.netns_batch[0].stdout is not None:
            fds.append(self.netns_batch[0].stdout.fileno())
        return fds

    def _cni_slots(self) -> dict[str, int]:
        """Free CNI slots by node."""
        free = dict.fromkeys(self.nodes, MAX_CNI)
        for p in self.pods.values():
            if p.proc is not None and p.phase in (ATTACHING, DELETING):
                free[p.node] -= 1
        return free

    def start_cni(self) -> None:
        slots = self._cni_slots()
        for pod in self.pods.values():
            if pod.phase == ATTACHING and pod.proc is None and pod.netns_made and slots[pod.node] > 0:
                # as a kubelet waits for a CNI config: none until the node's agent leased a subnet
                if self.agents.netconf(pod.node) is None:
                    continue
                pod.proc = self._cni(pod, "ADD")
                self.timings.mark(pod, "cni_start")
                slots[pod.node] -= 1

    def _cni(self, pod: Pod, verb: str) -> subprocess.Popen:
        """podnet-cni as a runtime executes it: in the node's namespace, the netconf on stdin.
        The launcher hands the call to the node's agent (its warm CNI server), or does the
        work itself while the agent is down."""
        node = self.nodes[pod.node]
        cni_bin = self.agents.cni_bin(pod.node)
        env = {
            "CNI_COMMAND": verb,
            "CNI_CONTAINERID": names.container_id(self.lab, pod.name),
            "CNI_NETNS": os.path.join(names.NETNS_DIR, names.pod_netns(self.lab, pod.name)),
            "CNI_IFNAME": "eth0",
            "CNI_PATH": cni_bin,
        }
        proc = Namespace(node["netns"]).popen(
            [os.path.join(cni_bin, "podnet-cni")],
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        assert proc.stdin is not None
        # a netconf is a few hundred bytes: the pipe takes it whole, without blocking the tick
        proc.stdin.write(json.dumps(self.agents.netconf(pod.node) or {}))
        proc.stdin.close()
        return proc
