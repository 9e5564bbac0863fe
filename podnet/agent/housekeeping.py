"""/healthz and /metrics of the agent.

/healthz answers 200 only while the subnet lease is held (renewed within its TTL), the
routes match the last lease records seen and the proxy's rules are in sync; 503 otherwise,
with the parts in the body. /metrics uses prometheus-client when it is installed (the
agent's own gauges), followed by the proxy's kube-proxy-named metrics in either case.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from proxy.health import parse_bind, serve

Check = Callable[[], dict[str, bool]]


class Housekeeping:
    def __init__(self, checks: Check, gauges: Callable[[], dict[str, float]], proxy_text: Callable[[], str]) -> None:
        self.checks, self.gauges, self.proxy_text = checks, gauges, proxy_text
        self.servers: list[Any] = []
        self._registry: Any = None
        try:
            from prometheus_client import CollectorRegistry
            from prometheus_client.core import GaugeMetricFamily

            outer = self

            class _Collector:
                def collect(self):
                    for name, value in sorted(outer.gauges().items()):
                        yield GaugeMetricFamily(name, name.replace("_", " "), value=value)

            self._registry = CollectorRegistry()
            self._registry.register(_Collector())
        except ImportError:  # the proxy's own text format serves alone
            pass

    def healthz(self, path: str) -> tuple[int, str, str]:
        if path.split("?")[0] not in ("/healthz", "/livez", "/"):
            return 404, "text/plain", "not found\n"
        parts = self.checks()
        return (200 if all(parts.values()) else 503), "application/json", json.dumps(parts, sort_keys=True)

    def metrics(self, path: str) -> tuple[int, str, str]:
        if path.split("?")[0] != "/metrics":
            return 404, "text/plain", "not found\n"
        text = ""
        if self._registry is not None:
            from prometheus_client import generate_latest

            text = generate_latest(self._registry).decode()
        else:
            text = "".join(f"# TYPE {n} gauge\n{n} {v}\n" for n, v in sorted(self.gauges().items()))
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
