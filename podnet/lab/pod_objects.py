"""Pods, Namespaces and NetworkPolicies, written into the lab's etcd as the API server holds
them: `v1` Pod (labels, spec.nodeName and the containers' ports, status.podIP(s) and phase),
`v1` Namespace (with the `kubernetes.io/metadata.name` label the API server adds) and
`networking.k8s.io/v1` NetworkPolicy (as `lab apply -f` stored it). Each node's agent
enforces NetworkPolicy from them, as from a real cluster's API.

Each sync writes only what changed (etcd_shadow.py). What the lab wrote carries an
annotation (not a label: a label would be matched by policies' selectors) and only such
objects are ever replaced or removed.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from typing import Any

from cluster.etcd import EtcdClient
from cluster.etcd_source import decode, key_for, registry_root
from cluster.source import KINDS, ref_of
from podnet.lab import manifests
from podnet.lab.endpointslices import BURST, BURST_WRITE_EVERY, WRITE_EVERY
from podnet.lab.etcd_shadow import EtcdShadow
from podnet.lab.pod import DELETING, RUNNING, STARTING, TERMINATING, Pod
from podnet.lab.spec import LabSpec

WRITTEN_BY = "podnet.io/written-by"
LAB = "podnet-lab"
NAME_LABEL = "kubernetes.io/metadata.name"
OUR_KINDS = ("Pod", "Namespace", "NetworkPolicy")


def _ours(meta: dict) -> dict:
    return {**meta, "annotations": {**(meta.get("annotations") or {}), WRITTEN_BY: LAB}}


def pod_phase(pod: Pod) -> str:
    # kube's Running: its container started (the lab's Starting: the workload forked, not yet
    # bound); so a pod is written once as it gets its address, not again when it binds
    return "Running" if pod.phase in (STARTING, RUNNING, TERMINATING) else "Pending"


def pod_object(pod: Pod, spec: LabSpec) -> dict:
    dep = spec.deployment(pod.deployment, pod.namespace)
    container: dict[str, Any] = manifests.container_object(dep) if dep else {"name": pod.deployment}
    container = {k: container[k] for k in ("name", "image", "ports") if k in container}
    meta: dict[str, Any] = {"name": pod.name, "namespace": pod.namespace, "labels": dict(pod.labels)}
    if pod.phase == TERMINATING:
        since = time.monotonic() - pod.term_at if pod.term_at is not None else 0.0  # term_at is monotonic
        meta["deletionTimestamp"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - since))
    status: dict[str, Any] = {"phase": pod_phase(pod)}
    if pod.ip:
        status.update(podIP=pod.ip, podIPs=[{"ip": pod.ip}])
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": _ours(meta),
        "spec": {"nodeName": pod.node, "containers": [container]},
        "status": status,
    }


def namespace_object(name: str, labels: dict[str, str] | None = None) -> dict:
    meta = {"name": name, "labels": {**(labels or {}), NAME_LABEL: name}}
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": _ours(meta), "status": {"phase": "Active"}}


def policy_object(obj: dict) -> dict:
    return {**obj, "metadata": _ours(obj.get("metadata") or {})}


class PodObjectWriter:
    def __init__(self, client: EtcdClient, prefix: str):
        self.client, self.prefix = client, prefix
        self.shadow = EtcdShadow(client, "Pods, Namespaces and NetworkPolicies")
        self._pods: dict[tuple[str, str], tuple[tuple, str, str]] = {}  # pod -> (what it was, key, JSON)
        self.rewritten: list[Pod] = []  # the pods whose objects the last wanted() changed

    def _ours_in_etcd(self) -> dict[str, str]:
        out = {}
        for kind in OUR_KINDS:
            for kv in self.client.get_prefix(registry_root(self.prefix) + KINDS[kind].resource + "/"):
                d = decode(self.prefix, kv)
                if d is not None and (d[1].get("metadata") or {}).get("annotations", {}).get(WRITTEN_BY) == LAB:
                    out[kv.key] = kv.value
                    self.shadow.revision = max(self.shadow.revision, kv.mod_revision)
        return out

    def wanted(self, spec: LabSpec, pods: Iterable[Pod], policies: list[dict],
               ns_labels: dict[str, dict[str, str]] | None = None) -> dict[str, str]:  # fmt: skip
        labels = ns_labels or {}
        objs = [namespace_object(n, labels.get(n)) for n in spec.namespaces] + [policy_object(p) for p in policies]
        out = {key_for(self.prefix, ref_of(o)): json.dumps(o, sort_keys=True) for o in objs}
        seen: dict[tuple[str, str], tuple[tuple, str, str]] = {}
        self.rewritten = []
        for p in pods:
            # a pod takes part in policy once it has an address: before, it is not written
            # (one write fewer per pod while a lab comes up); unchanged ones are not dumped again
            if p.phase == DELETING or p.ip is None:
                continue
            dep = spec.deployment(p.deployment, p.namespace)
            mark = (pod_phase(p), p.phase == TERMINATING, p.ip, p.node, tuple(sorted(p.labels.items())), dep)
            known = self._pods.get((p.namespace, p.name))
            if known is None or known[0] != mark:
                obj = pod_object(p, spec)
                known = (mark, key_for(self.prefix, ref_of(obj)), json.dumps(obj, sort_keys=True))
                self.rewritten.append(p)
            seen[(p.namespace, p.name)] = known
            out[known[1]] = known[2]
        self._pods = seen
        return out

    def sync(self, spec: LabSpec | None, pods: Iterable[Pod], policies: list[dict], changed: bool,
             starting: int = 0, ns_labels: dict[str, dict[str, str]] | None = None) -> None:  # fmt: skip
        self.shadow.note(changed)
        if not spec or not self.shadow.due(BURST_WRITE_EVERY if starting > BURST else WRITE_EVERY):
            return
        if self.shadow.write(self._ours_in_etcd, lambda: self.wanted(spec, pods, policies, ns_labels)):
            # a pod whose object this write changed is available (Pod.available) only once
            # every node's policy covers it too, not only its Service rules
            for p in self.rewritten:
                if p.published_revision:
                    p.published_revision = max(p.published_revision, self.shadow.revision)
