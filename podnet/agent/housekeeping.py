"""/healthz and /metrics of the agent.

/healthz answers 200 only while the subnet lease is held (renewed within its TTL), the
routes match the last lease records seen and the proxy's rules are in sync; 503 otherwise,
with the parts in the body, and `syncedRevision`: the store (etcd) revision every change up
to which is programmed on this node (Service rules and network policy), so a controller knows
when an endpoint it wrote is served here, not merely when it might be. /metrics is the agent's
own gauges (prometheus-client), followed by the proxy's kube-proxy-named metrics.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily

from proxy.health import parse_bind, serve

Check = Callable[[], dict[str, bool]]


class _Gauges:
    """The agent's gauges, read when /metrics is scraped."""

    def __init__(self, gauges: Callable[[], dict[str, float]]) -> None:
        self.gauges = gauges

    def collect(self):
        for name, value in sorted(self.gauges().items()):
            yield GaugeMetricFamily(name, name.replace("_", " "), value=value)


class Housekeeping:
    def __init__(
        self,
        checks: Check,
        gauges: Callable[[], dict[str, float]],
        proxy_text: Callable[[], str],
        synced_revision: Callable[[], int] = lambda: 0,
    ) -> None:
        self.checks, self.gauges, self.proxy_text = checks, gauges, proxy_text
        self.synced_revision = synced_revision
        self.servers: list[Any] = []
        self._registry = CollectorRegistry()
        self._registry.register(_Gauges(gauges))

    def healthz(self, path: str) -> tuple[int, str, str]:
        if path.split("?")[0] not in ("/healthz", "/livez", "/"):
            return 404, "text/plain", "not found\n"
        parts = self.checks()
        body = {**parts, "syncedRevision": self.synced_revision()}
        return (200 if all(parts.values()) else 503), "application/json", json.dumps(body, sort_keys=True)

    def metrics(self, path: str) -> tuple[int, str, str]:
        if path.split("?")[0] != "/metrics":
            return 404, "text/plain", "not found\n"
        text = generate_latest(self._registry).decode()
        return 200, "text/plain; version=0.0.4", text + self.proxy_text()

    def serve(self, healthz: str, metrics: str) -> None:
        if healthz:
            self.servers.append(serve(parse_bind(healthz, 10256), self.healthz))
        if metrics:
            self.servers.append(serve(parse_bind(metrics, 10249), self.metrics))

    def close(self) -> None:
        for s in self.servers:
            s.shutdown()
            s.server_close()
