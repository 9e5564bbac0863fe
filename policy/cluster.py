"""The cluster as NetworkPolicy sees it: pods (namespace, labels, node, IPs, container ports),
namespaces (labels) and the policies, kept from the objects source's events. Everything policy
decides is a function of one ClusterView."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

from cluster.source import DELETED, Event
from policy import spec as specmod
from policy.spec import NetworkPolicy, PolicyError

log = logging.getLogger("podnet.policy")

NAME_LABEL = "kubernetes.io/metadata.name"  # the API server puts it on every Namespace
GONE_PHASES = ("Succeeded", "Failed")  # a finished pod's address may be someone else's now


@dataclass(frozen=True)
class ContainerPort:
    name: str
    protocol: str
    port: int


@dataclass(frozen=True)
class PodInfo:
    namespace: str
    name: str
    labels: dict[str, str]
    node: str
    ips: tuple[str, ...]
    ports: tuple[ContainerPort, ...] = ()

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"

    def named_port(self, name: str, protocol: str) -> int | None:
        return next((p.port for p in self.ports if p.name == name and p.protocol == protocol), None)


def pod_info(obj: dict) -> PodInfo | None:
    """A v1 Pod as policy sees it; None for a pod that takes no part (no address yet, host
    network: its address is the node's, finished)."""
    meta = obj.get("metadata") or {}
    spec = obj.get("spec") or {}
    status = obj.get("status") or {}
    if spec.get("hostNetwork") or status.get("phase") in GONE_PHASES:
        return None
    ips = tuple(p["ip"] for p in status.get("podIPs") or [] if isinstance(p, dict) and p.get("ip"))
    if not ips and status.get("podIP"):
        ips = (status["podIP"],)
    if not ips:
        return None
    ports = tuple(
        ContainerPort(p.get("name", ""), p.get("protocol", "TCP"), int(p["containerPort"]))
        for c in spec.get("containers") or []
        for p in c.get("ports") or []
        if isinstance(p, dict) and isinstance(p.get("containerPort"), int)
    )
    labels = {str(k): str(v) for k, v in (meta.get("labels") or {}).items()}
    return PodInfo(meta.get("namespace") or "default", meta.get("name", ""), labels, spec.get("nodeName", ""),
                   ips, ports)  # fmt: skip


def namespace_labels(obj: dict) -> dict[str, str]:
    meta = obj.get("metadata") or {}
    labels = {str(k): str(v) for k, v in (meta.get("labels") or {}).items()}
    labels.setdefault(NAME_LABEL, meta.get("name", ""))
    return labels


@dataclass
class ClusterView:
    pods: dict[str, PodInfo] = field(default_factory=dict)
    namespaces: dict[str, dict[str, str]] = field(default_factory=dict)
    policies: dict[str, NetworkPolicy] = field(default_factory=dict)

    def labels_of_namespace(self, name: str) -> dict[str, str]:
        """A namespace's labels; one not (yet) in the store has the label every namespace has."""
        return self.namespaces.get(name) or {NAME_LABEL: name}

    def apply(self, events: Sequence[Event]) -> bool:
        """Take changes in; True when any touched what policy looks at."""
        changed = False
        for ev in events:
            try:
                changed |= self._apply_one(ev)
            except (AttributeError, KeyError, TypeError, ValueError) as e:  # not as the API holds it
                log.error("%s: not understood (%s); ignored", ev.ref, e)
        return changed

    def _apply_one(self, ev: Event) -> bool:
        ref = ev.ref
        key = f"{ref.namespace}/{ref.name}"
        present = ev.type != DELETED and ev.obj is not None
        if ref.kind == "Pod":
            return self._put(self.pods, key, pod_info(ev.obj) if present and ev.obj is not None else None)
        if ref.kind == "Namespace":
            return self._put(self.namespaces, ref.name, namespace_labels(ev.obj) if present and ev.obj else None)
        if ref.kind == "NetworkPolicy":
            return self._put(self.policies, key, self._policy(ev))
        return False

    @staticmethod
    def _policy(ev: Event) -> NetworkPolicy | None:
        if ev.type == DELETED or ev.obj is None:
            return None
        try:
            return specmod.parse(ev.obj)
        except PolicyError as e:  # the API server would have refused it; enforce nothing of it
            log.error("NetworkPolicy %s/%s: %s; ignored", ev.ref.namespace, ev.ref.name, e)
            return None

    @staticmethod
    def _put(table: dict, key: str, value: object) -> bool:
        if value is None:
            return table.pop(key, None) is not None
        if table.get(key) == value:
            return False
        table[key] = value
        return True
