"""The Deployment reconciler: as many pods of the current template as the Deployment asks
for, rolled with one surge pod and none unavailable (kube's RollingUpdate with maxSurge=1,
maxUnavailable=0): a new pod must have been an endpoint for `pod.SETTLE` seconds, so every
node's proxy has programmed it, before an old one starts terminating."""

from __future__ import annotations

import random
import string
from collections.abc import Callable

from podnet.lab.kubelet import Kubelet
from podnet.lab.pod import LIVE, RUNNING, Pod, log
from podnet.lab.spec import Deployment, LabSpec


class DeploymentReconciler:
    def __init__(self, kubelet: Kubelet, node_names: list[str], proxies_since: Callable[[], float]):
        self.kubelet = kubelet
        self.node_names = node_names
        self.proxies_since = proxies_since  # since when every node's proxy has synced

    def reconcile_all(self, spec: LabSpec, now: float) -> None:
        for dep in spec.deployments:
            self.reconcile(dep, now)
        self.drop_orphans(spec)

    def reconcile(self, dep: Deployment, now: float) -> None:
        if self.kubelet.add_failed_until.get(dep.name, 0) > now:
            return
        template = dep.template_hash()
        pods = self.kubelet.pods.values()
        live = [p for p in pods if p.deployment == dep.name and p.phase in LIVE and not p.doomed]
        new = [p for p in live if p.template == template]
        old = sorted((p for p in live if p.template != template), key=lambda p: p.phase == RUNNING)
        if old:
            if len(new) < dep.replicas and len(new) + len(old) < dep.replicas + 1:
                self.create(dep, template)
            available = [p for p in new if p.available(now, self.proxies_since())]
            for pod in old[: max(0, len(available) + len(old) - dep.replicas)]:
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

    def drop_orphans(self, spec: LabSpec) -> None:
        """Pods of a Deployment that is no longer desired."""
        wanted = {d.name for d in spec.deployments}
        for pod in list(self.kubelet.pods.values()):
            if pod.deployment not in wanted and pod.phase in LIVE and not pod.doomed:
                self.kubelet.terminate(pod)

    def create(self, dep: Deployment, template: str) -> None:
        suffix = "".join(random.choices(string.ascii_lowercase + string.digits, k=5))
        w = dep.workload
        labels = {**dep.labels, "version": dep.version, "pod-template-hash": template}
        pod = Pod(f"{dep.name}-{template}-{suffix}", dep.name, template, dep.version, labels, self.schedule(),
                  w.kind, w.port, w.command, w.backend)  # fmt: skip
        self.kubelet.add(pod)

    def schedule(self) -> str:
        """The node with the fewest live pods (the first of them in topology order)."""
        load = dict.fromkeys(self.node_names, 0)
        for p in self.kubelet.pods.values():
            if p.phase in LIVE:
                load[p.node] += 1
        return min(self.node_names, key=lambda n: load[n])
