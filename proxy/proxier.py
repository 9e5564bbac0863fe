"""One sync, whatever the mode: drain the trackers, update the model, let the mode's renderer
plan the transaction, apply it, then clean up UDP conntrack entries and record metrics.

A sync is partial (only changed Services' chains are rewritten) unless it is the first one,
the previous one failed, node-wide inputs changed, or the periodic full sync is due.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

from proxy import conntrack
from proxy.backend import ApplyError, Backend
from proxy.metrics import Metrics
from proxy.model import NodeContext, ProxyModel, ServicePortModel, ServicePortName, node_context_with
from proxy.trackers import Trackers

log = logging.getLogger("podnet.proxy")


@dataclass
class SyncResult:
    applied: bool
    full: bool = False
    changed: int = 0
    seconds: float = 0.0


@dataclass
class Proxier:
    node: NodeContext
    backend: Backend
    trackers: Trackers
    metrics: Metrics = field(default_factory=Metrics)
    full_sync_period: float = 3600.0
    clean_conntrack: bool = True
    model: ProxyModel = field(init=False)
    last_success: float | None = None  # time.time() of the last successful sync
    last_queued: float | None = None  # oldest request not yet synced
    _need_full: bool = True
    _last_full: float = float("-inf")
    _stale: list = field(default_factory=list)  # conntrack flows still to clean

    def __post_init__(self) -> None:
        self.model = ProxyModel(self.node)
        for counter in (  # counters exist from the start, so a rate() over them never misses the first failure
            "kubeproxy_sync_proxy_rules_iptables_restore_failures_total",
            "kubeproxy_sync_proxy_rules_iptables_partial_restore_failures_total",
        ):
            self.metrics.inc(counter, 0)

    def queued(self) -> None:
        now = time.time()
        if self.last_queued is None:
            self.last_queued = now
        self.metrics.set("kubeproxy_sync_proxy_rules_last_queued_timestamp_seconds", now)

    def sync(self) -> SyncResult:
        if not self.trackers.synced:
            log.info("not syncing: no complete view of Services and EndpointSlices yet")
            return SyncResult(applied=False)
        start = time.monotonic()
        changes = self.trackers.drain()
        if changes.everything:
            self.model.node = node_context_with(self.node, self.trackers)
        changed = self.model.update(self.trackers, changes)
        self._count_changes(changes, changed)
        full = self._need_full or changes.everything or start - self._last_full >= self.full_sync_period
        if not full and not changed:
            self.last_queued = None
            self.last_success = time.time()
            return SyncResult(applied=False)
        for old, new in changed.values():
            self._stale += conntrack.stale_flows(old, new)
        try:
            tx = self.backend.render(self.model, set(changed), full)
            self.backend.apply(tx)
        except ApplyError:
            self._need_full = True  # the kernel may now differ from our idea of it
            self.metrics.inc("kubeproxy_sync_proxy_rules_iptables_restore_failures_total")
            if not full:
                self.metrics.inc("kubeproxy_sync_proxy_rules_iptables_partial_restore_failures_total")
            raise
        except Exception:
            # The changes were drained from the trackers: only a full sync brings them back.
            self._need_full = True
            raise
        self._need_full = False
        if full:
            self._last_full = start
        if self.clean_conntrack and self._stale:
            conntrack.delete(self._stale)
        self._stale = []
        seconds = time.monotonic() - start
        self._record(tx, full, seconds)
        log.info("synced (%s, %d service ports changed) in %.3fs", "full" if full else "partial", len(changed), seconds)
        return SyncResult(applied=True, full=full, changed=len(changed), seconds=seconds)

    def _count_changes(self, changes, changed: dict[ServicePortName, tuple]) -> None:
        self.metrics.inc("kubeproxy_sync_proxy_rules_service_changes_total", len(changes.services))
        self.metrics.inc("kubeproxy_sync_proxy_rules_endpoint_changes_total", len(changed))

    def _record(self, tx, full: bool, seconds: float) -> None:
        now = time.time()
        self.last_success = now
        self.last_queued = None
        m = self.metrics
        m.observe("kubeproxy_sync_proxy_rules_duration_seconds", seconds)
        kind = "full" if full else "partial"
        m.observe(f"kubeproxy_sync_{kind}_proxy_rules_duration_seconds", seconds)
        m.set("kubeproxy_sync_proxy_rules_last_timestamp_seconds", now)
        for table, count in tx.rule_counts().items():
            m.set("kubeproxy_sync_proxy_rules_iptables_total", count, table=table)
        no_local = {"internal": 0, "external": 0}
        for p in self.model.ports.values():
            if p.internal_local and p.endpoints and not p.local_endpoints:
                no_local["internal"] += 1
            if p.external_local and p.externally_reachable and p.endpoints and not p.local_endpoints:
                no_local["external"] += 1
        for policy, count in no_local.items():
            m.set("kubeproxy_sync_proxy_rules_no_local_endpoints_total", count, traffic_policy=policy)

    def health_check_ports(self) -> dict[int, tuple[ServicePortModel, int]]:
        """healthCheckNodePort -> (a service port, its local endpoint count), for the HTTP server."""
        out: dict[int, tuple[ServicePortModel, int]] = {}
        for p in self.model.ports.values():
            if p.health_check_node_port:
                _, count = out.get(p.health_check_node_port, (p, 0))
                out[p.health_check_node_port] = (p, max(count, len(p.local_endpoints)))
        return out

    def force_full(self) -> None:
        self._need_full = True
