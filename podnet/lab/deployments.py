"""The Deployment reconciler: as many pods of the current template as the Deployment asks
for, rolled with one surge pod and none unavailable (kube's RollingUpdate with maxSurge=1,
maxUnavailable=0): a new pod must be available -- every node's agent has programmed the etcd
revision that made it an endpoint (Pod.available) -- before an old one starts terminating."""

from __future__ import annotations

import random
import string
from collections.abc import Callable

from podnet.lab import busybox
from podnet.lab.kubelet import Kubelet
from podnet.lab.pod import LIVE, RUNNING, Pod, log
from podnet.lab.spec import Deployment, LabSpec


class DeploymentReconciler:
    def __init__(self, kubelet: Kubelet, node_names: list[str], synced_revision: Callable[[], int]):
        self.kubelet = kubelet
        self.node_names = node_names
        self.synced_revision = synced_revision  # the etcd revision every node has programmed

    def reconcile_all(self, spec: LabSpec, now: float) -> None:
        for dep in spec.deployments:
            self.reconcile(dep, now)
        self.drop_orphans(spec)

    def reconcile(self, dep: Deployment, now: float) -> None:
        if self.kubelet.add_failed_until.get(dep.key, 0) > now:
            return
        if dep.bare:
            self.keep_bare(dep)
            return
        template = dep.template_hash()
        pods = self.kubelet.pods.values()
        live = [p for p in pods if p.deployment_key == dep.key and p.phase in LIVE and not p.doomed]
        new = [p for p in live if p.template == template]
        old = sorted((p for p in live if p.template != template), key=lambda p: p.ready)
        if old:
            # kube's RollingUpdate: at most replicas+maxSurge pods, at least replicas-maxUnavailable
            # available; an old pod counts as available while it is ready
            surge, unavailable = dep.rollout_bounds()
            for _ in range(min(dep.replicas - len(new), dep.replicas + surge - len(new) - len(old))):
                self.create(dep, template)
            synced = self.synced_revision()
            available = [p for p in new if p.available(synced)]
            old_ready = sum(1 for p in old if p.ready)
            can_stop = len(available) + old_ready - (dep.replicas - unavailable)
            # old pods that are not ready serve nobody: they go first, and cost no availability
            doomed = [p for p in old if not p.ready] + [p for p in old if p.ready][: max(0, can_stop)]
            # never more than the new pods can replace: old + new stays at least replicas - unavailable
            for pod in doomed[: max(0, len(old) + len(new) - (dep.replicas - unavailable))]:
                log(f"pod {pod.name}: replaced by the rollout of {dep.name} to {dep.version}")
                self.kubelet.terminate(pod)
        elif len(new) < dep.replicas:
            for _ in range(dep.replicas - len(new)):
                self.create(dep, template)
        elif len(new) > dep.replicas:
            # as kube does: the not-yet-ready first, then the youngest
            extra = sorted(new, key=lambda p: (p.phase == RUNNING, -p.created))
            for pod in extra[: len(new) - dep.replicas]:
                self.kubelet.terminate(pod)

    def keep_bare(self, dep: Deployment) -> None:
        """A bare Pod: its one pod, named as the object, made again only once the one before
        it is gone (a pod's name is its network namespace's)."""
        if dep.name not in self.kubelet.pods:
            self.kubelet.add(self.new_pod(dep, dep.name, dep.template_hash(), dict(dep.labels)))

    def drop_orphans(self, spec: LabSpec) -> None:
        """Pods of a Deployment that is no longer desired."""
        wanted = {d.key for d in spec.deployments}
        for pod in list(self.kubelet.pods.values()):
            if pod.deployment_key not in wanted and pod.phase in LIVE and not pod.doomed:
                self.kubelet.terminate(pod)

    def create(self, dep: Deployment, template: str) -> None:
        while True:  # pod names are unique in the lab, across namespaces too (each has a netns)
            suffix = "".join(random.choices(string.ascii_lowercase + string.digits, k=5))
            if f"{dep.name}-{template}-{suffix}" not in self.kubelet.pods:
                break
        labels = {**dep.labels, "pod-template-hash": template}
        if not dep.image:  # the lab dialect's pods carry their version as a label
            labels["version"] = dep.version
        self.kubelet.add(self.new_pod(dep, f"{dep.name}-{template}-{suffix}", template, labels))

    def new_pod(self, dep: Deployment, name: str, template: str, labels: dict[str, str]) -> Pod:
        w = dep.workload
        env = dict(w.env)
        if w.kind == "command":
            env = {**busybox.pod_env(self.kubelet.lab, dep.image), **env}
        pod = Pod(name, dep.name, template, dep.version, labels, self.schedule(),
                  w.kind, w.port, w.command, w.backend, dep.namespace, env)  # fmt: skip
        pod.unready = dep.readiness is not None  # not ready until the probe first passes
        return pod

    def schedule(self) -> str:
        """The node with the fewest live pods (the first of them in topology order)."""
        load = dict.fromkeys(self.node_names, 0)
        for p in self.kubelet.pods.values():
            if p.phase in LIVE:
                load[p.node] += 1
        return min(self.node_names, key=lambda n: load[n])
