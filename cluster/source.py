"""The cluster-objects source interface: Kubernetes objects in, change events out.

A source (etcd, a watched directory, the Kubernetes API) delivers the objects it holds as
plain Kubernetes JSON (dicts) to a sink: first every object it lists, then one event per
change, and `synced()` once the first complete view has been delivered. Consumers (the
service proxy, the policy engine) parse what they need and know no store.

Every source keeps a Mirror of what it has delivered: a fresh list after a lost watch or a
compaction is diffed against it, so the sink sees exactly the changes it missed, never an
event twice and never a deletion lost.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

ADDED, MODIFIED, DELETED = "ADDED", "MODIFIED", "DELETED"


@dataclass(frozen=True)
class Kind:
    kind: str
    resource: str  # the plural the API and the etcd layout use
    api_version: str
    namespaced: bool


KINDS: dict[str, Kind] = {
    k.kind: k
    for k in (
        Kind("Service", "services", "v1", True),
        Kind("EndpointSlice", "endpointslices", "discovery.k8s.io/v1", True),
        Kind("Node", "nodes", "v1", False),
        Kind("ServiceCIDR", "servicecidrs", "networking.k8s.io/v1", False),
        Kind("NetworkPolicy", "networkpolicies", "networking.k8s.io/v1", True),
        Kind("Pod", "pods", "v1", True),  # NetworkPolicy's subjects and peers
        Kind("Namespace", "namespaces", "v1", False),  # namespaceSelector matches their labels
    )
}
BY_RESOURCE = {k.resource: k for k in KINDS.values()}


@dataclass(frozen=True, order=True)
class ObjectRef:
    kind: str
    namespace: str  # "" for cluster-scoped kinds
    name: str

    def __str__(self) -> str:
        return f"{self.kind}/{self.namespace}/{self.name}" if self.namespace else f"{self.kind}/{self.name}"


def ref_of(obj: dict) -> ObjectRef:
    """The reference of a Kubernetes object (namespace defaulted as the API server does)."""
    kind = KINDS[obj["kind"]]
    meta = obj.get("metadata") or {}
    namespace = (meta.get("namespace") or "default") if kind.namespaced else ""
    return ObjectRef(kind.kind, namespace, meta.get("name", ""))


@dataclass(frozen=True)
class Event:
    type: str  # ADDED, MODIFIED or DELETED
    ref: ObjectRef
    obj: dict | None  # the object now (None once DELETED)


class Sink(Protocol):
    def events(self, events: Sequence[Event]) -> None:
        """Changes, in order. Called from the source's thread."""

    def synced(self) -> None:
        """The first complete view has been delivered (called once, after its events)."""

    def progress(self, revision: int) -> None:
        """Every change up to store revision `revision` has been delivered (called after the
        events, by sources whose store has revisions: a consumer can then say which revision
        the state it programmed covers)."""


class ObjectSource(Protocol):
    description: str

    def run(self, sink: Sink, stop: threading.Event) -> None:
        """Deliver objects and changes until `stop` is set (then return promptly)."""

    def close(self) -> None:
        """Wake a blocked run() (after `stop` was set)."""


class Mirror:
    """What a source has delivered so far; turns lists and single changes into events."""

    def __init__(self) -> None:
        self.objects: dict[ObjectRef, dict] = {}

    def replace(self, objects: Iterable[tuple[ObjectRef, dict]], kinds: set[str] | None = None) -> list[Event]:
        """Events that take the sink from what it has to `objects` (a complete list).

        With `kinds`, the list covers only those kinds; others are left as they are.
        """
        new = dict(objects)
        out = []
        for ref in sorted(self.objects.keys() - new.keys()):
            if kinds is None or ref.kind in kinds:
                out.append(Event(DELETED, ref, None))
                del self.objects[ref]
        for ref in sorted(new):
            event = self.put(ref, new[ref])
            if event is not None:
                out.append(event)
        return out

    def put(self, ref: ObjectRef, obj: dict) -> Event | None:
        old = self.objects.get(ref)
        if old == obj:
            return None  # seen already (a replayed watch event, a re-list of the same state)
        self.objects[ref] = obj
        return Event(ADDED if old is None else MODIFIED, ref, obj)

    def delete(self, ref: ObjectRef) -> Event | None:
        if self.objects.pop(ref, None) is None:
            return None
        return Event(DELETED, ref, None)


class CollectingSink:
    """A sink that keeps what it was told (for `podnet cluster get`, tests and benchmarks)."""

    def __init__(self) -> None:
        self.received: list[Event] = []
        self.is_synced = threading.Event()
        self.revision = 0
        self.changed = threading.Condition()

    def events(self, events: Sequence[Event]) -> None:
        with self.changed:
            self.received.extend(events)
            self.changed.notify_all()

    def synced(self) -> None:
        self.is_synced.set()

    def progress(self, revision: int) -> None:
        self.revision = revision
