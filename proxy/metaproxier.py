"""Dual stack: one proxier per IP family from one stream of objects (kube-proxy's metaproxier).

Each family has its own trackers (a drain is per proxier), its own model (the family's
cluster IPs, endpoints and node IPs) and its own backend (`ip`/`ip6 podnet`, iptables /
ip6tables); the source feeds every family's trackers through a FanOut, and a sync syncs each
family in turn.
"""

from __future__ import annotations

from dataclasses import dataclass

from proxy.metrics import Metrics
from proxy.model import ServicePortModel
from proxy.proxier import Proxier, SyncResult
from proxy.trackers import Trackers


class FanOut:
    """Looks like one Trackers to a source; forwards every object to each family's trackers."""

    def __init__(self, trackers: list[Trackers]):
        self.all = trackers

    def update(self, key, kind: type, current) -> None:
        for t in self.all:
            t.update(key, kind, current)

    def pending(self) -> bool:
        return any(t.pending() for t in self.all)

    @property
    def synced(self) -> bool:
        return all(t.synced for t in self.all)

    @synced.setter
    def synced(self, value: bool) -> None:
        for t in self.all:
            t.synced = value


@dataclass
class MetaProxier:
    proxiers: list[Proxier]  # one per family, the node's primary family first
    metrics: Metrics

    def sync(self) -> SyncResult:
        """Sync every family; a family that fails does not keep the others from syncing."""
        results, error = [], None
        for p in self.proxiers:
            try:
                results.append(p.sync())
            except Exception as e:  # noqa: BLE001 (re-raised once the other families synced)
                error = error or e
        if error is not None:
            raise error
        return SyncResult(
            applied=any(r.applied for r in results),
            full=any(r.full for r in results),
            changed=sum(r.changed for r in results),
            seconds=sum(r.seconds for r in results),
        )

    def queued(self) -> None:
        for p in self.proxiers:
            p.queued()

    @property
    def last_success(self) -> float | None:
        times = [p.last_success for p in self.proxiers]
        return None if any(t is None for t in times) else min(t for t in times if t is not None)

    @property
    def last_queued(self) -> float | None:
        times = [p.last_queued for p in self.proxiers if p.last_queued is not None]
        return min(times) if times else None

    @property
    def port_count(self) -> int:
        return sum(len(p.model.ports) for p in self.proxiers)

    def health_check_ports(self) -> dict[int, tuple[ServicePortModel, int]]:
        out: dict[int, tuple[ServicePortModel, int]] = {}
        for p in self.proxiers:
            for port, (model, count) in p.health_check_ports().items():
                _, before = out.get(port, (model, 0))
                out[port] = (model, before + count)
        return out
