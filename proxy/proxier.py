"""One sync, whatever the mode: drain the trackers, update the model, let the mode's renderer
plan the transaction, apply it, then clean up UDP conntrack entries and record metrics.

A sync is partial (only changed Services' chains are rewritten) unless it is the first one,
the previous one failed, node-wide inputs changed, or the periodic full sync is due.

What the metrics and the healthCheckNodePort servers report is kept as running tallies,
updated from the service ports a sync changed (PortTally), so a one-Service sync never walks
every service port.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

from proxy import conntrack
from proxy.backend import ApplyError, Backend
from proxy.metrics import Metrics
from proxy.model import ModelBuild, NodeContext, ProxyModel, ServicePortModel, ServicePortName, node_context_with
from proxy.trackers import Changes, Trackers

log = logging.getLogger("podnet.proxy")


@dataclass
class SyncResult:
    applied: bool
    full: bool = False
    changed: int = 0
    seconds: float = 0.0


@dataclass
class PortTally:
    """Per-service-port facts that metrics and health checks sum over the whole model, kept
    up to date from each sync's (old, new) pairs instead of recounted."""

    no_local: dict[str, int] = field(default_factory=lambda: {"internal": 0, "external": 0})
    # healthCheckNodePort -> {service port: (its model, its local ready endpoint IPs)}
    health: dict[int, dict[ServicePortName, tuple[ServicePortModel, frozenset[str]]]] = field(default_factory=dict)
    _health_view: dict[int, tuple[ServicePortModel, int]] = field(default_factory=dict)

    def update(self, old: ServicePortModel | None, new: ServicePortModel | None) -> None:
        for p, sign in ((old, -1), (new, 1)):
            if p is None:
                continue
            for policy in _no_local_policies(p):
                self.no_local[policy] += sign
        for p in (old, new):
            if p is not None and p.health_check_node_port:
                self._drop_health(p)
        if new is not None and new.health_check_node_port:
            members = self.health.setdefault(new.health_check_node_port, {})
            members[new.name] = (new, new.local_ready_ips)
            self._refresh(new.health_check_node_port)

    def _drop_health(self, p: ServicePortModel) -> None:
        members = self.health.get(p.health_check_node_port)
        if members is not None and members.pop(p.name, None) is not None:
            if not members:
                del self.health[p.health_check_node_port]
            self._refresh(p.health_check_node_port)

    def _refresh(self, hc: int) -> None:
        """One healthCheckNodePort's answer: a service port using it (the first by name) and
        its Service's local ready endpoints, counted once per IP whatever the port (kube-proxy's
        LocalReadyEndpoints squashes by IP)."""
        members = self.health.get(hc)
        if not members:
            self._health_view.pop(hc, None)
            return
        first = min(members)
        self._health_view[hc] = (members[first][0], len(frozenset().union(*(ips for _, ips in members.values()))))

    def health_check_ports(self) -> dict[int, tuple[ServicePortModel, int]]:
        return dict(self._health_view)


def _no_local_policies(p: ServicePortModel) -> tuple[str, ...]:
    """The traffic policies (kube-proxy's metric labels) under which this service port has
    endpoints, none of them on this node."""
    if not p.endpoints or p.local_endpoints:
        return ()
    out = ("internal",) if p.internal_local else ()
    return out + (("external",) if p.external_local and p.externally_reachable else ())


@contextlib.contextmanager
def _cyclic_gc_paused() -> Iterator[None]:
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


@dataclass
class Proxier:
    node: NodeContext
    backend: Backend
    trackers: Trackers
    metrics: Metrics = field(default_factory=Metrics)
    full_sync_period: float = 3600.0
    clean_conntrack: bool = True
    model: ProxyModel = field(init=False)
    family: str = field(init=False)  # kube-proxy's ip_family label value: IPv4 / IPv6
    last_success: float | None = None  # time.time() of the last successful sync
    last_queued: float | None = None  # oldest request not yet synced
    # the store revision (etcd's) whose changes, and all before, are in the kernel's rules
    synced_revision: int = 0
    _need_full: bool = True
    _last_full: float = float("-inf")
    _stale: list = field(default_factory=list)  # conntrack flows still to clean
    tally: PortTally = field(default_factory=PortTally)

    def __post_init__(self) -> None:
        self.model = ProxyModel(self.node)
        # this family's series (dual stack: two proxiers, one registry)
        self.family = "IPv4" if self.node.family == 4 else "IPv6"
        for counter in (  # counters exist from the start, so a rate() over them never misses the first failure
            "kubeproxy_sync_proxy_rules_iptables_restore_failures_total",
            "kubeproxy_sync_proxy_rules_iptables_partial_restore_failures_total",
        ):
            self.metrics.inc(counter, 0, ip_family=self.family)

    def queued(self) -> None:
        now = time.time()
        if self.last_queued is None:
            self.last_queued = now
        self.metrics.set("kubeproxy_sync_proxy_rules_last_queued_timestamp_seconds", now, ip_family=self.family)

    def sync(self) -> SyncResult:
        # A full sync of 10,000 Services makes millions of objects and no cyclic garbage; the
        # cyclic collector would walk the ever larger heap again and again: about half the
        # sync's CPU (bench/proxy_iptables.py). Reference counting frees everything meanwhile.
        with _cyclic_gc_paused():
            return self._sync()

    def _sync(self) -> SyncResult:
        if not self.trackers.synced:
            log.info("not syncing: no complete view of Services and EndpointSlices yet")
            return SyncResult(applied=False)
        start = time.monotonic()
        changes = self.trackers.drain()
        if changes.everything:
            self.model.node = node_context_with(self.node, self.trackers)
        full = self._need_full or changes.everything or start - self._last_full >= self.full_sync_period
        build = self.model.build(self.trackers, changes)
        # a backend that rebuilds the kernel's state from scratch reads the model as it is
        # built: the kernel's tool parses the first service ports while the next are built
        render_full = getattr(self.backend, "render_full", None) if full else None
        tx = render_full(self.model, build) if render_full is not None else None
        streamed = tx is not None
        if not streamed:
            changed = self._built(build.finish(), changes)
            if not full and not changed:
                self.last_queued = None
                self.last_success = time.time()
                self.synced_revision = max(self.synced_revision, changes.revision)
                return SyncResult(applied=False)
        try:
            if tx is None:
                tx = self.backend.render(self.model, set(changed), full)
            self.backend.apply(tx)
        except ApplyError:
            self._need_full = True  # the kernel may now differ from our idea of it
            self.metrics.inc("kubeproxy_sync_proxy_rules_iptables_restore_failures_total", ip_family=self.family)
            if not full:
                self.metrics.inc(
                    "kubeproxy_sync_proxy_rules_iptables_partial_restore_failures_total", ip_family=self.family
                )
            raise
        except Exception:
            # The changes were drained from the trackers: only a full sync brings them back.
            self._need_full = True
            raise
        finally:
            if streamed:  # what the build got to, applied or not (the rest is left to the next sync)
                changed = self._built(build, changes)
        self._need_full = False
        self.synced_revision = max(self.synced_revision, changes.revision)
        if full:
            self._last_full = start
        if self.clean_conntrack and self._stale:
            conntrack.delete(self._stale)
        self._stale = []
        seconds = time.monotonic() - start
        self._record(tx, full, seconds)
        log.info("synced (%s, %d service ports changed) in %.3fs", "full" if full else "partial", len(changed), seconds)
        return SyncResult(applied=True, full=full, changed=len(changed), seconds=seconds)

    def _built(self, build: ModelBuild, changes: Changes) -> dict[ServicePortName, tuple]:
        """Account for what a model build changed: the running tallies, the conntrack flows to
        clean, the change counters."""
        changed = build.changed
        for old, new in changed.values():
            self.tally.update(old, new)
            self._stale += conntrack.stale_flows(old, new)
        self._count_changes(changes, changed)
        return changed

    def _count_changes(self, changes, changed: dict[ServicePortName, tuple]) -> None:
        self.metrics.inc("kubeproxy_sync_proxy_rules_service_changes_total", len(changes.services))
        self.metrics.inc("kubeproxy_sync_proxy_rules_endpoint_changes_total", len(changed))

    def _record(self, tx, full: bool, seconds: float) -> None:
        now = time.time()
        self.last_success = now
        self.last_queued = None
        m, family = self.metrics, self.family
        m.observe("kubeproxy_sync_proxy_rules_duration_seconds", seconds, ip_family=family)
        kind = "full" if full else "partial"
        m.observe(f"kubeproxy_sync_{kind}_proxy_rules_duration_seconds", seconds, ip_family=family)
        m.set("kubeproxy_sync_proxy_rules_last_timestamp_seconds", now, ip_family=family)
        for table, count in tx.rule_counts().items():
            m.set("kubeproxy_sync_proxy_rules_iptables_total", count, table=table, ip_family=family)
        for policy, count in self.tally.no_local.items():
            m.set("kubeproxy_sync_proxy_rules_no_local_endpoints_total", count, traffic_policy=policy, ip_family=family)

    def health_check_ports(self) -> dict[int, tuple[ServicePortModel, int]]:
        """healthCheckNodePort -> (a service port, its local endpoint count), for the HTTP server
        (as of the model: a port counts once the sync that brought it ran)."""
        return self.tally.health_check_ports()

    def force_full(self) -> None:
        self._need_full = True
