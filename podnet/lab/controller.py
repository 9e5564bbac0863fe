"""The lab controller: one long-lived process per lab that keeps the desired state.

It runs inside the lab's namespace (so `lab down` finds it by namespace like everything
else), reads desired.json and, once per tick, has each part play its role of a cluster's
control plane and kubelets:

  ServiceAddresses      ClusterIPs and node ports (service_addresses.py)
  DeploymentReconciler  how many pods of which template (deployments.py)
  Kubelet               each pod through its life (kubelet.py, pod.py)
  EndpointSliceWriter   the Service and EndpointSlice objects, into the lab's etcd
  Prober                readiness and liveness probes (probes.py)
  Announcer             LoadBalancer addresses on a node's underlay link (loadbalancer.py)
  records.json          what the cluster DNS pod answers (dns.py)
  NodeAgents            etcd and one `podnet agent` per node, supervised (agents.py)
  StatusWriter          status.json, what commands and people read (status.py)
  Checkpoint            what a controller taking over needs (checkpoint.py)

Single-threaded on purpose: the kubelet forks workloads.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import sys
import time
import traceback

from cluster.etcd import EtcdClient
from podnet.lab import cgroup, dns, loadbalancer, pids, probes
from podnet.lab import spec as specmod
from podnet.lab.agents import ETCD_CLIENT_PORT, ETCD_PREFIX, NodeAgents
from podnet.lab.checkpoint import Checkpoint
from podnet.lab.deployments import DeploymentReconciler
from podnet.lab.endpointslices import EndpointSliceWriter
from podnet.lab.kubelet import Kubelet
from podnet.lab.pod import log
from podnet.lab.pod_objects import PodObjectWriter
from podnet.lab.service_addresses import ServiceAddresses
from podnet.lab.spec import LabSpec
from podnet.lab.state import LabFiles, read_json, write_json
from podnet.lab.status import StatusWriter


class Stopwatch:
    """Where the controller's time goes, by step of its tick (logged every 100 ready pods)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self.ticks = 0
        self.next_report = 100
        self.reported = 0

    def step(self, name: str, fn, *args):
        t0 = time.perf_counter()
        try:
            return fn(*args)
        finally:
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - t0

    def summary(self) -> str:
        top = sorted(self.seconds.items(), key=lambda kv: -kv[1])
        steps = " ".join(f"{k} {v:.2f}s" for k, v in top if v >= 0.01)
        t = os.times()
        cpu, children = t.user + t.system, t.children_user + t.children_system
        return f"{self.ticks} ticks, cpu {cpu:.1f}s (children {children:.1f}s): {steps}"


# each tick walks every pod: with hundreds of them, a faster beat costs more than it gains
TICK = 0.05
# while pods start, the checkpoint (every pod, as JSON) is written at most this often: a
# controller taking over treats a pod it has no pid of as abandoned and replaces it, so a
# stale checkpoint costs a few restarts after a crash, never a wrong state
CHECKPOINT_EVERY = 1.0


class Controller:
    def __init__(self, files: LabFiles):
        self.files = files
        self.net = net = read_json(files.network)
        self.lab: str = net["lab"]
        self.nodes: dict[str, dict] = {n["name"]: n for n in net["nodes"]}
        self.spec: LabSpec | None = None
        self.generation = -1
        self.desired_mtime = 0
        self.dirty = True
        self.stopping = False
        self.agents = NodeAgents(files, net)
        self.addresses = ServiceAddresses(files.path("ipam", "services"))
        self.checkpoint = Checkpoint(files.checkpoint)
        self.kubelet = Kubelet(self.lab, self.nodes, self.agents, self.backend_of, self.save_checkpoint)
        self.deployments = DeploymentReconciler(self.kubelet, list(self.nodes), self.agents.synced_revision)
        self.slices = EndpointSliceWriter(EtcdClient(net["etcd"]["host"], ETCD_CLIENT_PORT), ETCD_PREFIX)
        self.pod_objects = PodObjectWriter(EtcdClient(net["etcd"]["host"], ETCD_CLIENT_PORT), ETCD_PREFIX)
        self.network_policies: list[dict] = []  # as `lab apply -f` stored them (desired.json)
        self.namespace_labels: dict[str, dict[str, str]] = {}  # likewise (namespaceSelector)
        self.status = StatusWriter(files.status, self.lab, self.nodes, self.kubelet, self.addresses, self.agents)
        self.kubelet.resolv_conf = self.resolv_conf
        self.prober = probes.Prober(self.lab, lambda node: self.nodes[node]["netns"])
        self.announcer = loadbalancer.Announcer(self.nodes)
        self.records = ""
        self.spent = Stopwatch()
        self.checkpoint_due = False
        self.last_checkpoint = 0.0

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
            self.sleep()
        log("controller stopping")

    def sleep(self) -> None:
        """Until the next tick: TICK at most, less when a CNI call, a namespace batch or a
        workload has something to say (so a pod's next step never waits for the beat)."""
        fds = self.kubelet.wait_fds() + self.agents.wait_fds()
        if not fds:
            time.sleep(TICK)
            return
        poller = select.poll()
        for fd in fds:
            poller.register(fd, select.POLLIN)
        with contextlib.suppress(InterruptedError):
            poller.poll(TICK * 1000)

    def _on_child(self, *_) -> None:
        self.kubelet.child_exited = True

    def _on_stop(self, *_) -> None:
        self.stopping = True

    def tick(self) -> None:
        now = time.monotonic()
        kubelet, step = self.kubelet, self.spent.step
        step("desired", self.load_desired)
        step("requests", self.take_requests)
        step("reap", kubelet.reap)
        step("advance", kubelet.advance, now)
        if self.spec:
            step("deployments", self.deployments.reconcile_all, self.spec, now)
        self.dirty |= step("agents", self.agents.keep_running, now)
        self.dirty |= step("subnets", self.learn_subnets)
        step("namespaces", kubelet.make_namespaces)
        step("cni", kubelet.start_cni)
        if self.spec:
            pods = list(kubelet.pods.values())
            self.dirty |= step("probes", self.prober.run, pods, self.probes_of, now, self.restart)
            ready_nodes = [n for n, node in self.nodes.items() if node.get("subnet")]
            self.dirty |= step("announce", self.announcer.sync, dict(self.addresses.lb_ips), ready_nodes)
        self.dirty |= kubelet.take_changed()
        starting = kubelet.starting_count()
        step("slices", self.slices.sync, self.spec, self.addresses, kubelet.pods.values(), self.dirty, starting)
        step("pods", self.pod_objects.sync, self.spec, kubelet.pods.values(), self.network_policies, self.dirty,
             starting, self.namespace_labels)  # fmt: skip
        if self.dirty:
            step("records", self.write_records)
        # how far every node has programmed what was written: pods become available
        last_write = max(self.slices.revision, self.pod_objects.shadow.revision)  # Services' and policy's
        moved = step("synced", self.agents.observe, now, last_write, starting > 0)
        if step("status", self.status.publish, now, self.spec, self.generation, self.dirty or moved, starting > 0):
            self.dirty, self.checkpoint_due = False, True
        if self.checkpoint_due and (not starting or now - self.last_checkpoint >= CHECKPOINT_EVERY):
            step("checkpoint", self.save_checkpoint)
        self.spent.ticks += 1
        if kubelet.ready_count >= self.spent.next_report or (
            kubelet.ready_count > self.spent.reported and not starting
        ):
            self.spent.next_report, self.spent.reported = kubelet.ready_count + 100, kubelet.ready_count
            log(f"{kubelet.ready_count} pods ready; {self.spent.summary()}; {kubelet.timings.summary()}")

    def learn_subnets(self) -> bool:
        """Each node's pod subnet, as its agent chose it (the conflist it wrote names it), into
        the node records and network.json that `podnet capture|trace` read."""
        changed = False
        for name, node in self.nodes.items():
            subnet = self.agents.subnet(name)
            if subnet and subnet != node["subnet"]:
                node["subnet"] = subnet
                changed = True
        if changed:
            write_json(self.files.network, {**self.net, "nodes": list(self.nodes.values())})
        return changed

    # -- taking over from a controller that was killed ----------------------------------
    def adopt(self) -> None:
        """Take over what an earlier controller of this lab left (it was killed, perhaps with
        -9): etcd and the node agents it started, from their pid files (a pid file names a
        process by pid and start time, so a reused pid is never adopted), and its pods and
        Service addresses from its checkpoint. Anything else running in a node namespace
        has no supervisor left and is removed, so no node ever runs two agents."""
        running = self.agents.adopt()
        if running:
            log(f"adopted etcd and agents: pids {', '.join(map(str, running))}")
        from podnet.lab.net import kill_in_namespaces

        kill_in_namespaces([n["netns"] for n in self.nodes.values()], spare=frozenset(running))
        saved = self.checkpoint.load()
        if saved is None:
            return
        log(f"taking over from controller {saved.controller_pid}")
        self.kubelet.restarts = dict(saved.restarts)
        self.addresses.restore(saved.addresses)
        self.kubelet.adopt(saved.pods)
        self.save_checkpoint()

    def save_checkpoint(self) -> None:
        self.checkpoint_due, self.last_checkpoint = False, time.monotonic()
        self.checkpoint.save(list(self.kubelet.pods.values()), self.addresses.record(), self.kubelet.restarts)

    # -- desired state ------------------------------------------------------------------
    def load_desired(self) -> None:
        try:
            mtime = os.stat(self.files.desired).st_mtime_ns
        except FileNotFoundError:
            return
        if mtime == self.desired_mtime:
            return
        data = read_json(self.files.desired)
        self.spec = dns.with_cluster_dns(specmod.parse(data["spec"]))
        self.generation = data["generation"]
        self.network_policies = data.get("networkPolicies", [])
        self.namespace_labels = data.get("namespaceLabels", {})
        self.desired_mtime = mtime
        self.addresses.sync(self.spec.services, self.spec.network.service_cidr, loadbalancer.pool(self.spec))
        self.save_checkpoint()  # an address handed out is on record before anyone is told of it
        self.dirty = True
        log(f"desired state generation {self.generation}")

    def take_requests(self) -> None:
        try:
            entries = os.listdir(self.files.requests_dir)
        except FileNotFoundError:
            return
        for entry in entries:
            os.unlink(os.path.join(self.files.requests_dir, entry))
            verb, _, name = entry.partition(".")
            pod = self.kubelet.pods.get(name)
            if verb == "delete" and pod is not None:
                log(f"pod {name}: deleted by request")
                self.kubelet.terminate(pod)

    # -- probes and cluster DNS ------------------------------------------------------------
    def probes_of(self, pod) -> tuple[specmod.Probe | None, specmod.Probe | None]:
        dep = self.spec.deployment(pod.deployment, pod.namespace) if self.spec else None
        if dep is None:
            return None, None
        if dep.readiness is None and pod.unready and not pod.restarting:
            pod.unready = False  # restarted by its liveness probe, and nothing else to wait for
            self.kubelet.changed = True
        return dep.readiness, dep.liveness

    def restart(self, pod) -> None:
        dep = self.spec.deployment(pod.deployment, pod.namespace) if self.spec else None
        probes.restart(pod, lambda p: self.kubelet._signal(p, signal.SIGKILL), bool(dep and dep.readiness))

    def resolv_conf(self, pod) -> str | None:
        if not self.spec:
            return None
        return dns.resolv_conf(pod.namespace, dns.dns_ip(self.spec.network.service_cidr))

    def write_records(self) -> None:
        """What the DNS pod answers: every Service's ClusterIP, or its ready pods when headless."""
        if self.spec is None:
            return
        spec = self.spec
        from podnet.lab import manifests
        from podnet.lab.endpointslices import endpoints

        services = []
        for svc in spec.services:
            ready = [e.ip for e in endpoints(svc, self.kubelet.pods.values()) if e.ready]
            ports = [
                {"name": p.name, "protocol": p.protocol, "port": p.port if not svc.headless else
                 manifests.target_port(svc, p, spec)} for p in svc.ports
            ]  # fmt: skip
            ip = None if svc.headless else self.addresses.cluster_ips.get(svc.key)
            services.append(
                {"name": svc.name, "namespace": svc.namespace, "ports": ports, "pods": ready, "clusterIP": ip}
            )
        text = json.dumps(dns.records(services), sort_keys=True)
        if text != self.records:
            write_json(dns.records_path(self.lab), json.loads(text))
            self.records = text

    def backend_of(self, service: str) -> tuple[str, int] | None:
        """Where the http workload finds the Service it counts visits in."""
        svc = self.spec.service(service) if self.spec else None
        ip = self.addresses.cluster_ip(service)
        return (ip, svc.ports[0].port) if svc and ip else None


def main() -> None:
    lab = sys.argv[1]
    files = LabFiles(lab)
    pids.write(files.pidfile, os.getpid())
    group = cgroup.create(lab)
    if group is not None:  # before anything is started: all the lab's processes are born in it
        cgroup.join(group)
    Controller(files).run()


if __name__ == "__main__":
    main()
