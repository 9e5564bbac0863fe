"""The lab controller: one long-lived process per lab that keeps the desired state.

It runs inside the lab's namespace (so `lab down` finds it by namespace like everything
else), reads desired.json, and drives every pod through its life:

  Pending -> Attaching (netns made, `podnet-cni ADD` running in the node) -> Starting
  (workload forked into the pod, waiting for it to bind) -> Running (an endpoint)
  -> Terminating (endpoint marked terminating, drained, then SIGTERM) -> Deleting
  (`podnet-cni DEL`, netns removed) -> gone.

A pod whose process dies is Deleting at once and its Deployment gets a replacement.
Deployments roll with one surge pod and none unavailable: a new pod must have been an
endpoint for `settle` seconds (every node's proxy has programmed it) before an old one
starts terminating. The controller also supervises one podnet-proxy per node and writes the
Services and EndpointSlices they read. Single-threaded on purpose: it forks workloads.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import socket
import string
import subprocess
import sys
import time
import traceback
from dataclasses import dataclass, field

from ipam.clusterip import ClusterIPAllocator
from ipam.store_url import open_store
from podnet.lab import names, objects, selectors, workloads
from podnet.lab.daemons import NodeDaemons
from podnet.lab.node import Namespace, ip_batch
from podnet.lab.spec import Deployment, LabSpec, Service
from podnet.lab.state import LabFiles, read_json, write_json

PENDING, ATTACHING, STARTING, RUNNING, TERMINATING, DELETING = (
    "Pending",
    "Attaching",
    "Starting",
    "Running",
    "Terminating",
    "Deleting",
)
LIVE = (PENDING, ATTACHING, STARTING, RUNNING)
# Endpoint changes reach the proxies in batches (SLICE_EVERY) and each proxy syncs at most
# every 200 ms: after SETTLE seconds a new endpoint is in every node's rules, and DRAIN
# seconds after an endpoint turns terminating it has left them.
SLICE_EVERY = 0.25
SETTLE = float(os.environ.get("PODNET_LAB_SETTLE", "1.5"))
DRAIN = float(os.environ.get("PODNET_LAB_DRAIN", "3.0"))
GRACE = 10.0  # SIGTERM -> SIGKILL
MAX_CNI = int(os.environ.get("PODNET_LAB_CNI_PARALLEL", "4"))


def log(msg: str) -> None:
    print(f"{time.strftime('%H:%M:%S')} {msg}", flush=True)


@dataclass
class Pod:
    name: str
    deployment: str
    template: str
    version: str
    labels: dict
    node: str
    kind: str
    port: int
    command: tuple = ()
    backend: str | None = None
    phase: str = PENDING
    ip: str | None = None
    pid: int | None = None
    proc: subprocess.Popen | None = None  # Popen of the CNI call in flight, or of a command workload
    ready_fd: int | None = None
    created: float = field(default_factory=time.time)
    ready_at: float | None = None
    term_at: float | None = None
    sigterm_at: float | None = None
    exited: bool = False
    doomed: bool = False  # terminate as soon as it is attached
    adopted: bool = False  # left by an earlier controller: not our child, watched by pid

    def available(self, now: float, proxies_since: float) -> bool:
        if self.phase != RUNNING or self.ready_at is None:
            return False
        return now - max(self.ready_at, proxies_since) >= SETTLE


class Controller:
    def __init__(self, files: LabFiles):
        self.files = files
        self.net = read_json(files.network)
        self.lab = self.net["lab"]
        self.nodes = {n["name"]: n for n in self.net["nodes"]}
        self.pods: dict[str, Pod] = {}
        self.spec: LabSpec | None = None
        self.generation = -1
        self.desired_mtime = 0
        self.cluster_ips: dict[str, str] = {}
        self.service_ips: ClusterIPAllocator | None = None
        self.node_ports: dict[tuple[str, int], int] = {}
        self.restarts: dict[str, int] = {}
        self.backoff: dict[str, float] = {}
        self.dirty = True
        self.last_publish = 0.0
        self.child_exited = True
        self.stopping = False
        self.last_slices = 0.0
        self.slices_dirty = True
        self.started = time.monotonic()
        self.node_daemons = NodeDaemons(files, self.nodes, self.started)
        self.adopted_left = False
        self.ready_count = 0
        self.last_adopted_check = 0.0

    # -- the loop -----------------------------------------------------------------------
    def run(self) -> None:
        signal.signal(signal.SIGCHLD, self._on_child)
        signal.signal(signal.SIGTERM, self._on_stop)
        log(f"controller for lab {self.lab} started (pid {os.getpid()})")
        self.adopt()
        while not self.stopping:
            try:
                self.tick()
            except Exception:
                log("tick failed:\n" + traceback.format_exc())
                time.sleep(0.5)
            # each tick walks every pod: with hundreds of them, a faster beat costs more than it gains
            time.sleep(0.05)
        log("controller stopping")

    # -- taking over from a controller that was killed ----------------------------------
    def adopt(self) -> None:
        """Take over what an earlier controller of this lab left (it was killed, perhaps with
        -9): pods whose process still runs carry on as they were, the others are cleaned up;
        node daemons lost their supervisor, so they are replaced by fresh ones."""
        old = read_json(self.files.status)
        if not old:
            return
        log(f"taking over from controller {old.get('controllerPid')}")
        self.restarts = {d["name"]: d["restarts"] for d in old.get("deployments", [])}
        for s in old.get("services", []):
            if s.get("clusterIP"):
                self.cluster_ips[s["name"]] = s["clusterIP"]
            for p in s["ports"]:
                if p.get("nodePort"):
                    self.node_ports[(s["name"], p["port"])] = p["nodePort"]
        known = set()
        for p in old.get("pods", []):
            pod = Pod(
                p["name"], p["deployment"], p["template"], p["version"], p["labels"], p["node"],
                p["kind"], p["port"], tuple(p.get("command") or ()), p.get("backend"),
                ip=p["ip"], pid=p["pid"], adopted=True,
            )  # fmt: skip
            known.add(pod.name)
            self.pods[pod.name] = pod
            if p["phase"] == RUNNING and pod.pid and _alive(pod.pid):
                pod.phase, pod.ready_at = RUNNING, time.monotonic()
            else:
                if pod.pid and _alive(pod.pid):
                    self._signal(pod, signal.SIGKILL)
                pod.exited = True
                pod.phase = DELETING
        self.adopted_left = True
        prefix = names.pod_netns(self.lab, "")
        strays = [n for n in names.list_netns() if n.startswith(prefix) and n[len(prefix) :] not in known]
        if strays:  # made after the last status was written: no owner to ask CNI DEL of
            ip_batch([f"netns del {n}" for n in strays], check=False)
        from podnet.lab.net import kill_in_namespaces

        kill_in_namespaces([n["netns"] for n in self.nodes.values()])

    def _on_child(self, *_):
        self.child_exited = True

    def _on_stop(self, *_):
        self.stopping = True

    def tick(self) -> None:
        now = time.monotonic()
        self.load_desired()
        self.take_requests()
        self.reap()
        self.advance(now)
        if self.spec:
            for dep in self.spec.deployments:
                self.reconcile(dep, now)
            self.drop_orphans()
        self.dirty |= self.node_daemons.cni_servers(now)
        self.make_namespaces()
        self.start_cni()
        self.sync_services()
        if self.spec:
            first_pods = any(p.phase != RUNNING for p in self.pods.values())
            self.dirty |= self.node_daemons.proxies(now, self.spec, first_pods)
        self.publish()

    # -- desired state ------------------------------------------------------------------
    def load_desired(self) -> None:
        try:
            mtime = os.stat(self.files.desired).st_mtime_ns
        except FileNotFoundError:
            return
        if mtime == self.desired_mtime:
            return
        data = read_json(self.files.desired)
        from podnet.lab import spec as specmod

        self.spec = specmod.parse(data["spec"])
        self.generation = data["generation"]
        self.desired_mtime = mtime
        self.allocate_services()
        self.dirty = True
        log(f"desired state generation {self.generation}")

    def allocate_services(self) -> None:
        """ClusterIPs from the cluster IPAM (ipam.clusterip); node ports in kube's range."""
        assert self.spec is not None  # called once the desired state is read
        if self.service_ips is None:
            store = open_store(f"file:{self.files.path('ipam', 'services')}")
            self.service_ips = ClusterIPAllocator(store, [self.spec.network.service_cidr])
        wanted = {s.name: s for s in self.spec.services}
        for name in list(self.cluster_ips):
            if name not in wanted or (wanted[name].cluster_ip not in (None, self.cluster_ips[name])):
                self.service_ips.release(self.cluster_ips.pop(name))
        for key in list(self.node_ports):
            if key[0] not in wanted:
                del self.node_ports[key]
        used_ports = {p.node_port for s in self.spec.services for p in s.ports if p.node_port}
        used_ports |= set(self.node_ports.values())
        for svc in self.spec.services:
            if svc.name not in self.cluster_ips:
                ip = self.service_ips.allocate(svc.cluster_ip, owner=svc.name)
                self.cluster_ips[svc.name] = str(ip)
            if svc.type != "NodePort":
                continue
            for p in svc.ports:
                if p.node_port:
                    self.node_ports[(svc.name, p.port)] = p.node_port
                elif (svc.name, p.port) not in self.node_ports:
                    port = next(n for n in range(30000, 32768) if n not in used_ports)
                    self.node_ports[(svc.name, p.port)] = port
                    used_ports.add(port)

    def take_requests(self) -> None:
        try:
            entries = os.listdir(self.files.requests_dir)
        except FileNotFoundError:
            return
        for entry in entries:
            os.unlink(os.path.join(self.files.requests_dir, entry))
            verb, _, pod = entry.partition(".")
            if verb == "delete" and pod in self.pods:
                log(f"pod {pod}: deleted by request")
                self.terminate(self.pods[pod])

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
            if pod.adopted:
                gone = not _alive(pod.pid)
            elif pod.kind == "command":
                assert pod.proc is not None  # started together with its pid
                gone = pod.proc.poll() is not None
            else:
                try:
                    gone = os.waitpid(pod.pid, os.WNOHANG)[0] != 0
                except ChildProcessError:
                    gone = True
            if gone:
                pod.exited = True
                if pod.phase in (STARTING, RUNNING):
                    log(f"pod {pod.name}: process {pod.pid} died; replacing it")
                    self.restarts[pod.deployment] = self.restarts.get(pod.deployment, 0) + 1
                    self._to_deleting(pod)
                elif pod.phase == TERMINATING:
                    self._to_deleting(pod)

    def advance(self, now: float) -> None:
        for pod in list(self.pods.values()):
            if pod.phase == ATTACHING and pod.proc is not None and pod.proc.poll() is not None:
                self._attached(pod)
            elif pod.phase == STARTING:
                self._check_ready(pod, now)
            elif pod.phase == TERMINATING and not pod.exited:
                assert pod.term_at is not None  # set with the phase
                if pod.sigterm_at is None and now - pod.term_at >= DRAIN:
                    self._signal(pod, signal.SIGTERM)
                    pod.sigterm_at = now
                elif pod.sigterm_at is not None and now - pod.sigterm_at >= GRACE:
                    self._signal(pod, signal.SIGKILL)
            elif pod.phase == DELETING:
                self._advance_delete(pod)

    def _attached(self, pod: Pod) -> None:
        proc, pod.proc = pod.proc, None
        assert proc is not None and proc.stdout is not None  # a CNI call with its output piped
        out = proc.stdout.read()
        proc.stdout.close()
        if proc.returncode != 0:
            log(f"pod {pod.name}: podnet-cni ADD failed ({proc.returncode}): {out.strip()}")
            self.backoff[pod.deployment] = time.monotonic() + 1.0
            self._to_deleting(pod)
            return
        result = json.loads(out)
        pod.ip = result["ips"][0]["address"].split("/")[0]
        if pod.doomed:
            self._to_deleting(pod)
            return
        self._start_workload(pod)

    def _start_workload(self, pod: Pod) -> None:
        ns = Namespace(names.pod_netns(self.lab, pod.name))
        pod.phase = STARTING
        self.dirty = True
        if pod.kind == "command":
            env = {"POD_NAME": pod.name, "POD_IP": pod.ip, "POD_VERSION": pod.version, "PORT": str(pod.port)}
            env["PATH"] = os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            pod.proc = ns.popen(list(pod.command), env=env, stdin=subprocess.DEVNULL, start_new_session=True)
            pod.pid = pod.proc.pid
            return
        backend = None
        if pod.backend and pod.backend in self.cluster_ips:
            svc = self.spec.service(pod.backend) if self.spec is not None else None
            assert svc is not None  # ClusterIPs are held only for desired Services
            backend = (self.cluster_ips[pod.backend], svc.ports[0].port)
        identity = workloads.PodIdentity(pod.name, pod.version, pod.kind, pod.port, backend)
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:  # the pod's process
            try:
                os.close(r)
                signal.signal(signal.SIGCHLD, signal.SIG_DFL)
                signal.signal(signal.SIGTERM, signal.SIG_DFL)
                os.setsid()
                ns.enter()
                workloads.serve(identity, w)
            except BaseException:
                traceback.print_exc()
            os._exit(1)
        os.close(w)
        os.set_blocking(r, False)
        pod.pid, pod.ready_fd = pid, r

    def _check_ready(self, pod: Pod, now: float) -> None:
        if pod.kind == "command":
            try:
                socket.create_connection((pod.ip, pod.port), timeout=0.05).close()
            except OSError:
                return
        else:
            assert pod.ready_fd is not None  # set when the workload is forked
            try:
                if not os.read(pod.ready_fd, 1):
                    return  # closed without a byte: it died; reap() will see it
            except BlockingIOError:
                return
            os.close(pod.ready_fd)
            pod.ready_fd = None
        pod.phase, pod.ready_at = RUNNING, now
        self.dirty = True
        self.ready_count += 1
        if self.ready_count % 100 == 0:
            log(f"{self.ready_count} pods ready; controller cpu {time.process_time():.1f}s")
        if pod.doomed:
            self.terminate(pod)

    def _signal(self, pod: Pod, sig: int) -> None:
        assert pod.pid is not None  # only started pods are signalled
        with contextlib.suppress(ProcessLookupError):
            os.kill(pod.pid, sig)

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
        self.dirty = True

    def _to_deleting(self, pod: Pod) -> None:
        if pod.ready_fd is not None:
            os.close(pod.ready_fd)
            pod.ready_fd = None
        if pod.pid and not pod.exited:
            self._signal(pod, signal.SIGKILL)
        pod.phase, pod.proc = DELETING, None
        self.dirty = True

    def _advance_delete(self, pod: Pod) -> None:
        if pod.proc is None:
            if self._cni_slots() <= 0:
                return
            pod.proc = self._cni(pod, "DEL")
            return
        if pod.proc.poll() is None:
            return
        assert pod.proc.stdout is not None  # a CNI call with its output piped
        out = pod.proc.stdout.read()
        pod.proc.stdout.close()
        if pod.proc.returncode != 0:
            log(f"pod {pod.name}: podnet-cni DEL failed: {out.strip()}")
        if pod.pid and not pod.exited:
            return  # still being reaped
        ip_batch([f"netns del {names.pod_netns(self.lab, pod.name)}"], check=False)
        del self.pods[pod.name]
        self.dirty = True

    # -- deployments --------------------------------------------------------------------
    def reconcile(self, dep: Deployment, now: float) -> None:
        """Surge one, none unavailable: kube's RollingUpdate with maxSurge=1, maxUnavailable=0."""
        if self.backoff.get(dep.name, 0) > now:
            return
        template = dep.template_hash()
        live = [p for p in self.pods.values() if p.deployment == dep.name and p.phase in LIVE and not p.doomed]
        new = [p for p in live if p.template == template]
        old = sorted((p for p in live if p.template != template), key=lambda p: p.phase == RUNNING)
        if old:
            if len(new) < dep.replicas and len(new) + len(old) < dep.replicas + 1:
                self.create(dep, template)
            available = [p for p in new if p.available(now, self.node_daemons.proxies_since)]
            for pod in old[: max(0, len(available) + len(old) - dep.replicas)]:
                log(f"pod {pod.name}: replaced by the rollout of {dep.name} to {dep.version}")
                self.terminate(pod)
        elif len(new) < dep.replicas:
            for _ in range(dep.replicas - len(new)):
                self.create(dep, template)
        elif len(new) > dep.replicas:
            # as kube does: the not-yet-ready first, then the youngest
            extra = sorted(new, key=lambda p: (p.phase == RUNNING, -p.created))
            for pod in extra[: len(new) - dep.replicas]:
                self.terminate(pod)

    def drop_orphans(self) -> None:
        """Pods of a Deployment that is no longer desired."""
        assert self.spec is not None  # called once the desired state is read
        wanted = {d.name for d in self.spec.deployments}
        for pod in list(self.pods.values()):
            if pod.deployment not in wanted and pod.phase in LIVE and not pod.doomed:
                self.terminate(pod)

    def create(self, dep: Deployment, template: str) -> None:
        name = f"{dep.name}-{template}-{''.join(random.choices(string.ascii_lowercase + string.digits, k=5))}"
        load = {n: 0 for n in self.nodes}
        for p in self.pods.values():
            if p.phase in LIVE:
                load[p.node] += 1
        node = min(load, key=lambda n: (load[n], list(self.nodes).index(n)))
        w = dep.workload
        labels = {**dep.labels, "version": dep.version, "pod-template-hash": template}
        self.pods[name] = Pod(name, dep.name, template, dep.version, labels, node, w.kind, w.port, w.command, w.backend)
        self.dirty = True

    # -- kernel work in batches ---------------------------------------------------------
    def make_namespaces(self) -> None:
        pending = [p for p in self.pods.values() if p.phase == PENDING and p.proc is None]
        if not pending:
            return
        ip_batch([f"netns add {names.pod_netns(self.lab, p.name)}" for p in pending])
        for p in pending:
            p.phase = ATTACHING  # waits for a CNI slot; proc stays None until it has one
        self.dirty = True

    def _cni_slots(self) -> int:
        busy = sum(1 for p in self.pods.values() if p.proc is not None and p.phase in (ATTACHING, DELETING))
        return MAX_CNI - busy

    def start_cni(self) -> None:
        slots = self._cni_slots()
        for pod in self.pods.values():
            if slots <= 0:
                return
            if pod.phase == ATTACHING and pod.proc is None:
                pod.proc = self._cni(pod, "ADD")
                slots -= 1

    def _cni(self, pod: Pod, verb: str):
        node = self.nodes[pod.node]
        env = {
            "CNI_COMMAND": verb,
            "CNI_CONTAINERID": names.container_id(self.lab, pod.name),
            "CNI_NETNS": os.path.join(names.NETNS_DIR, names.pod_netns(self.lab, pod.name)),
            "CNI_IFNAME": "eth0",
            "CNI_PATH": self.net["cni_bin"],
        }
        return Namespace(node["netns"]).popen(
            [os.path.join(self.net["cni_bin"], "podnet-cni")],
            env=env,
            stdin=open(node["netconf"]),  # noqa: SIM115 - the child owns it
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )

    # -- services -----------------------------------------------------------------------
    def sync_services(self) -> None:
        self.slices_dirty = self.slices_dirty or self.dirty
        now = time.monotonic()
        if not self.slices_dirty or not self.spec or now - self.last_slices < SLICE_EVERY:
            return
        self.slices_dirty, self.last_slices = False, now
        os.makedirs(self.files.objects_dir, exist_ok=True)
        wanted = set()
        for svc in self.spec.services:
            wanted.add(svc.name)
            node_ports = {p.port: self.node_ports.get((svc.name, p.port)) for p in svc.ports}
            cluster_ip = self.cluster_ips[svc.name]
            objects.write(
                objects.service_path(self.files.objects_dir, svc.name),
                objects.service_object(svc, cluster_ip, node_ports),
            )
            objects.write(
                objects.slice_path(self.files.objects_dir, svc.name), objects.endpoint_slice(svc, self.endpoints(svc))
            )
        for entry in os.listdir(self.files.objects_dir):
            stem = entry.removesuffix(".json")
            kind, _, name = stem.partition("-")
            if entry.endswith(".json") and name not in wanted:
                objects.remove(os.path.join(self.files.objects_dir, entry))

    def endpoints(self, svc: Service) -> list[objects.Endpoint]:
        eps = []
        for p in self.pods.values():
            if p.ip is None or not selectors.selects(svc.selector, p.labels):
                continue
            if p.phase == RUNNING:
                eps.append(objects.Endpoint(p.name, p.ip, p.node, True, True, False))
            elif p.phase == TERMINATING and not p.exited:
                eps.append(objects.Endpoint(p.name, p.ip, p.node, False, True, True))
        return eps

    # -- what we observe ----------------------------------------------------------------
    def publish(self) -> None:
        now = time.monotonic()
        since = now - self.last_publish
        # a status of many pods costs a moment to write: write it less often while it changes
        if since < max(0.1, len(self.pods) * 0.0005) or (not self.dirty and since < 0.2):
            return
        if not self.dirty and since < 1.0:
            since_proxies = self.node_daemons.proxies_since
            if not any(p.phase == RUNNING and not p.available(now, since_proxies) for p in self.pods.values()):
                return  # nothing changes by itself: once a second is enough
        self.last_publish = now
        self.dirty = False
        write_json(self.files.status, self.status(now))

    def status(self, now: float) -> dict:
        deps = []
        converged = self.spec is not None
        for dep in self.spec.deployments if self.spec else ():
            template = dep.template_hash()
            mine = [p for p in self.pods.values() if p.deployment == dep.name]
            updated = [p for p in mine if p.template == template and p.phase in LIVE and not p.doomed]
            ready = [p for p in updated if p.phase == RUNNING]
            others = [p for p in mine if p.template != template and p.phase in LIVE]
            done = len(ready) == dep.replicas and len(updated) == dep.replicas and not others
            converged = converged and done
            deps.append(
                {
                    "name": dep.name,
                    "replicas": dep.replicas,
                    "updated": len(updated),
                    "ready": len(ready),
                    "available": sum(1 for p in ready if p.available(now, self.node_daemons.proxies_since)),
                    "version": dep.version,
                    "restarts": self.restarts.get(dep.name, 0),
                    "done": done,
                }
            )
        services = []
        for svc in self.spec.services if self.spec else ():
            services.append(
                {
                    "name": svc.name,
                    "type": svc.type,
                    "clusterIP": self.cluster_ips.get(svc.name),
                    "selector": svc.selector,
                    "ports": [
                        {
                            "port": p.port,
                            "targetPort": p.target_port,
                            "nodePort": self.node_ports.get((svc.name, p.port)),
                        }
                        for p in svc.ports
                    ],
                    "endpoints": [vars(e) for e in self.endpoints(svc)],
                }
            )
        nodes = []
        for name, node in self.nodes.items():
            nodes.append({**{k: node[k] for k in ("name", "ip", "subnet", "netns")}, **self.node_daemons.state(name)})
        pods = [
            {
                "name": p.name,
                "deployment": p.deployment,
                "node": p.node,
                "ip": p.ip,
                "phase": p.phase,
                "ready": p.phase == RUNNING,
                "version": p.version,
                "labels": p.labels,
                "pid": p.pid,
                "created": p.created,
                "netns": names.pod_netns(self.lab, p.name),
                # what a controller taking over needs to carry on
                "template": p.template,
                "kind": p.kind,
                "port": p.port,
                "command": list(p.command),
                "backend": p.backend,
            }
            for p in sorted(self.pods.values(), key=lambda p: p.name)
        ]
        settled = converged and all(p.phase == RUNNING for p in self.pods.values())
        return {
            "lab": self.lab,
            "observedGeneration": self.generation,
            "converged": converged,
            "settled": settled,
            "controllerPid": os.getpid(),
            "nodes": nodes,
            "deployments": deps,
            "services": services,
            "pods": pods,
            "time": time.time(),
        }


def _alive(pid: int) -> bool:
    """Running, and not a zombie (a dead process its new parent has not reaped yet)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except (FileNotFoundError, IndexError):
        return False


def main() -> None:
    lab = sys.argv[1]
    files = LabFiles(lab)
    with open(files.pidfile, "w") as f:
        f.write(f"{os.getpid()}\n")
    Controller(files).run()


if __name__ == "__main__":
    main()
