"""Change trackers: objects arriving from a source only feed these; a sync drains them.

As kube-proxy's servicechangetracker/endpointschangetracker do, a tracker keeps, per object, the
state it had at the last sync (the first "previous") and the latest one, and forgets an entry
whose latest state equals the previous one again, so a burst that ends where it started
costs no sync at all.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from proxy.objects import EndpointSlice, KubeObject, Node, Service, ServiceCIDR

K = TypeVar("K")
V = TypeVar("V")


class ChangeTracker(Generic[K, V]):
    def __init__(self) -> None:
        self.state: dict[K, V] = {}  # as of the last drain
        self._pending: dict[K, tuple[V | None, V | None]] = {}

    def update(self, key: K, current: V | None) -> None:
        previous = self._pending[key][0] if key in self._pending else self.state.get(key)
        if previous == current:
            self._pending.pop(key, None)
        else:
            self._pending[key] = (previous, current)

    def pending(self) -> bool:
        return bool(self._pending)

    def drain(self) -> dict[K, tuple[V | None, V | None]]:
        """The (previous, current) pairs since the last drain; state moves to current."""
        changes, self._pending = self._pending, {}
        for key, (_, current) in changes.items():
            if current is None:
                self.state.pop(key, None)
            else:
                self.state[key] = current
        return changes


ServiceKey = tuple[str, str]


@dataclass
class Changes:
    """What one drain of all trackers found."""

    services: set[ServiceKey] = field(default_factory=set)
    everything: bool = False  # node labels or service CIDRs changed: every Service may differ
    revision: int = 0  # the store revision whose changes, and all before, this drain holds

    def __bool__(self) -> bool:
        return bool(self.services) or self.everything


class Trackers:
    """The four object kinds kube-proxy watches, each in its tracker."""

    def __init__(self, node_name: str) -> None:
        self.node_name = node_name
        self.services: ChangeTracker[ServiceKey, Service] = ChangeTracker()
        self.slices: ChangeTracker[ServiceKey, EndpointSlice] = ChangeTracker()
        self.nodes: ChangeTracker[str, Node] = ChangeTracker()
        self.cidrs: ChangeTracker[str, ServiceCIDR] = ChangeTracker()
        self.synced = False  # set once the source has delivered its first complete view
        # every change up to this store revision has been fed (0: the source has no revisions)
        self.revision = 0
        self._slices_of: dict[ServiceKey, dict[ServiceKey, EndpointSlice]] = {}

    def update(self, key, kind: type, current: KubeObject | None) -> None:
        trackers: dict[type, ChangeTracker[Any, Any]] = {
            Service: self.services,
            EndpointSlice: self.slices,
            Node: self.nodes,
            ServiceCIDR: self.cidrs,
        }
        tracker = trackers[kind]
        if kind is Node and key != self.node_name:
            return  # only this node's labels matter to the proxy
        tracker.update(key, current)

    def pending(self) -> bool:
        return any(t.pending() for t in (self.services, self.slices, self.nodes, self.cidrs))

    def drain(self) -> Changes:
        # read before draining: the source feeds a revision's changes before it says so, so
        # what is drained below holds at least every change up to it
        changes = Changes(revision=self.revision)
        for key in self.services.drain():
            changes.services.add(key)
        for key, (previous, current) in self.slices.drain().items():
            if previous is not None:
                changes.services.add(previous.service_key)
                self._slices_of.get(previous.service_key, {}).pop(key, None)
            if current is not None:
                changes.services.add(current.service_key)
                self._slices_of.setdefault(current.service_key, {})[key] = current
        if self.nodes.drain() or self.cidrs.drain():
            changes.everything = True
        return changes

    def slices_of(self, service: ServiceKey) -> list[EndpointSlice]:
        """The slices of one Service as of the last drain, in a stable order."""
        by_key = self._slices_of.get(service, {})
        return [by_key[k] for k in sorted(by_key)]

    def node(self) -> Node | None:
        return self.nodes.state.get(self.node_name)
