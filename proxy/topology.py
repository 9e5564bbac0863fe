"""Which endpoints a node uses for a Service port, as kube-proxy's pkg/proxy/topology.go decides.

- Usable means ready. When no endpoint is ready, endpoints that are serving and terminating
  are used instead (graceful termination), decided separately for the cluster-wide set and
  for the node-local set.
- Topology-aware routing: when every ready endpoint carries node hints and one names this
  node, only those are used (PreferSameNode); otherwise, when every ready endpoint carries
  zone hints and one names this node's zone, only those (PreferSameZone). Anything less and
  hints are ignored, as kube-proxy does, so a half-hinted slice never blackholes traffic.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol


class Hinted(Protocol):
    # read-only, so that a NamedTuple such as proxy.model.EndpointInfo satisfies it
    @property
    def ready(self) -> bool: ...
    @property
    def serving(self) -> bool: ...
    @property
    def terminating(self) -> bool: ...
    @property
    def is_local(self) -> bool: ...
    @property
    def zone_hints(self) -> frozenset[str] | None: ...
    @property
    def node_hints(self) -> frozenset[str] | None: ...


@dataclass(frozen=True)
class Categorized:
    cluster: tuple  # endpoints for traffic policy Cluster
    local: tuple  # this node's endpoints, for traffic policy Local
    any_usable: bool  # usable endpoints anywhere: unusable here means DROP, none at all means REJECT


def topology_filter(endpoints: Sequence[Hinted], node_name: str, zone: str) -> Callable[[Hinted], bool] | None:
    """The hint predicate to apply, or None when hints must be ignored."""
    return _hint_filter([e for e in endpoints if e.ready], node_name, zone)


def _hint_filter(ready: Sequence[Hinted], node_name: str, zone: str) -> Callable[[Hinted], bool] | None:
    if not ready:
        return None
    if all(e.node_hints for e in ready) and any(node_name in (e.node_hints or ()) for e in ready):
        return lambda e: node_name in (e.node_hints or ())
    if zone and all(e.zone_hints for e in ready) and any(zone in (e.zone_hints or ()) for e in ready):
        return lambda e: zone in (e.zone_hints or ())
    return None


def _usable(endpoints: Sequence[Hinted], keep: Callable[[Hinted], bool]) -> tuple:
    ready = tuple(e for e in endpoints if e.ready and keep(e))
    if ready:
        return ready
    return tuple(e for e in endpoints if e.serving and e.terminating and keep(e))


def categorize(
    endpoints: Sequence[Hinted], *, uses_cluster: bool, uses_local: bool, node_name: str, zone: str
) -> Categorized:
    cluster: tuple = ()
    local: tuple = ()
    ready = tuple(e for e in endpoints if e.ready)  # once: a full sync categorizes 100,000 endpoints
    if uses_cluster:
        hint = _hint_filter(ready, node_name, zone)
        if hint is None:  # every endpoint may be used: the ready ones, else the terminating fallback
            cluster = ready or tuple(e for e in endpoints if e.serving and e.terminating)
        else:
            cluster = _usable(endpoints, hint)
    if uses_local:
        local = _usable(endpoints, lambda e: e.is_local)
    any_usable = bool(ready) or any(e.serving and e.terminating for e in endpoints)
    return Categorized(cluster=cluster, local=local, any_usable=any_usable)
