"""Services: the service proxy (the same code as podnet-proxy) run in-process, fed from the
cluster-objects source through the proxy's TrackerFeed."""

from __future__ import annotations

import ipaddress
import logging
import threading
import time

from cluster.source import ObjectSource
from proxy import addresses
from proxy.backend import backend_for
from proxy.feed import TrackerFeed
from proxy.health import Health
from proxy.metrics import Metrics
from proxy.model import NodeContext
from proxy.proxier import Proxier
from proxy.runner import Runner
from proxy.trackers import Trackers

log = logging.getLogger("podnet.agent")

MAX_SYNC = 30.0  # kube-proxy's --iptables-sync-period


class Services:
    def __init__(self, mode: str, node: str, node_ips: tuple[str, ...], cluster_cidrs: tuple[str, ...],
                 service_cidrs: tuple[str, ...], source: ObjectSource, min_sync: float = 1.0) -> None:  # fmt: skip
        self.mode = mode
        self.source = source
        self.metrics = Metrics()
        self.trackers = Trackers(node)
        self.events = 0
        self.proxier: Proxier | None = None
        self.runner: Runner | None = None
        if mode != "none":
            v4 = tuple(c for c in cluster_cidrs if ipaddress.ip_network(c).version == 4)
            ctx = NodeContext(
                name=node,
                node_ips=tuple(ip for ip in node_ips if ipaddress.ip_address(ip).version == 4),
                cluster_cidrs=v4,
                local_addresses=addresses.local_addresses(4),
                service_cidrs=tuple(c for c in service_cidrs if ipaddress.ip_network(c).version == 4),
            )
            self.proxier = Proxier(ctx, backend_for(mode, ctx), self.trackers, self.metrics)
            self.runner = Runner(self._sync, min_interval=min_sync, max_interval=MAX_SYNC,
                                 retry_interval=max(min_sync, 0.5))  # fmt: skip
        self.health = Health(timeout=2 * MAX_SYNC + min_sync)
        self.feed = TrackerFeed(self.trackers, self._changed, self._progress)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _sync(self) -> None:
        assert self.proxier is not None
        self.proxier.sync()

    def _changed(self) -> None:
        self.events += 1
        if self.proxier is not None and self.runner is not None:
            self.proxier.queued()
            self.runner.request()

    def _progress(self, revision: int) -> None:
        """The store moved on without a change the proxy must program (a Pod was written, say):
        a sync then has nothing to do but record that its rules cover this revision too."""
        p = self.proxier
        if p is not None and self.runner is not None and self.trackers.synced and revision > p.synced_revision:
            self.runner.request()

    def synced_revision(self) -> int:
        """The store revision every change up to which is in this node's rules (0: none yet)."""
        if self.proxier is None:
            return self.trackers.revision if self.trackers.synced else 0
        return self.proxier.synced_revision

    def start(self) -> None:
        if self.runner is not None:
            self.runner.start()
        self._thread = threading.Thread(target=self._run_source, name="podnet-agent-objects", daemon=True)
        self._thread.start()

    def _run_source(self) -> None:
        try:
            self.source.run(self.feed, self._stop)
        except Exception:  # the source must never take the agent down silently
            log.exception("objects source %s stopped", self.source.description)

    def in_sync(self) -> bool:
        if self.proxier is None:
            return True
        if not self.trackers.synced:
            return False
        # As kube-proxy's healthz: programmed once, and no change has waited past the timeout.
        p = self.proxier
        return p.last_success is not None and self.health.check(p.last_success, p.last_queued, time.time())

    def stop(self) -> None:
        self._stop.set()
        self.source.close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self.runner is not None:
            self.runner.stop()
