"""The proxy's Prometheus metrics, through prometheus-client, under kube-proxy's names where the
meaning is the same (subsystem `kubeproxy`), so dashboards and alerts written for kube-proxy
read podnet-proxy unchanged.

Each `Metrics` has a registry of its own (not the library's global one): a process may hold
several proxiers (tests, benchmarks), and each must count only its own syncs. Callers name a
metric by its full exposition name, as kube-proxy's docs list them.

Dual stack runs one proxier per IP family on one registry: what a family's sync measures
carries an `ip_family` label ("IPv4" / "IPv6"), as kube-proxy's metrics do since 1.33
(kubernetes/kubernetes#129173), so one family's rule count never overwrites the other's.
"""

from __future__ import annotations

from dataclasses import dataclass

import prometheus_client
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

# kube-proxy's buckets for sync durations: exponential from 1 ms, factor 2, 15 buckets
DURATION_BUCKETS = tuple(0.001 * 2**i for i in range(15))


@dataclass(frozen=True)
class Spec:
    kind: type[Counter] | type[Gauge] | type[Histogram]
    help: str
    labels: tuple[str, ...] = ()


FAMILY = ("ip_family",)  # the label of what one family's proxier measures

SPECS: dict[str, Spec] = {
    "kubeproxy_sync_proxy_rules_duration_seconds": Spec(Histogram, "SyncProxyRules latency in seconds", FAMILY),
    "kubeproxy_sync_full_proxy_rules_duration_seconds": Spec(
        Histogram, "Full SyncProxyRules latency in seconds", FAMILY
    ),
    "kubeproxy_sync_partial_proxy_rules_duration_seconds": Spec(
        Histogram, "Partial SyncProxyRules latency in seconds", FAMILY
    ),
    "kubeproxy_sync_proxy_rules_last_timestamp_seconds": Spec(Gauge, "Last successful proxy rules sync", FAMILY),
    "kubeproxy_sync_proxy_rules_last_queued_timestamp_seconds": Spec(
        Gauge, "The last time a sync of proxy rules was queued", FAMILY
    ),
    "kubeproxy_sync_proxy_rules_iptables_restore_failures_total": Spec(
        Counter, "Proxy iptables restore failures", FAMILY
    ),
    "kubeproxy_sync_proxy_rules_iptables_partial_restore_failures_total": Spec(
        Counter, "Cumulative proxy iptables partial restore failures", FAMILY
    ),
    # a gauge in kube-proxy despite its _total suffix
    "kubeproxy_sync_proxy_rules_iptables_total": Spec(
        Gauge, "Total number of iptables rules owned by podnet-proxy", ("table", *FAMILY)
    ),
    "kubeproxy_sync_proxy_rules_service_changes_total": Spec(Counter, "Cumulative proxy rules Service changes"),
    "kubeproxy_sync_proxy_rules_endpoint_changes_total": Spec(Counter, "Cumulative proxy rules Endpoint changes"),
    "kubeproxy_sync_proxy_rules_no_local_endpoints_total": Spec(
        Gauge, "Number of services with a Local traffic policy and no endpoints", ("traffic_policy", *FAMILY)
    ),
    "podnet_proxy_invalid_objects": Spec(Gauge, "Objects skipped as invalid in the last scan of the objects directory"),
}

# what generate_latest writes (the library's "latest" names a newer content type)
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

# kube-proxy (Go's client) exposes no `_created` series; prometheus-client would add one per
# counter and histogram unless told not to. The switch is process-wide, hence here, once.
prometheus_client.disable_created_metrics()


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self._metrics: dict[str, Counter | Gauge | Histogram] = {}
        for name, spec in SPECS.items():
            # prometheus-client appends `_total` to a counter's name itself
            if spec.kind is Histogram:
                self._metrics[name] = Histogram(
                    name, spec.help, spec.labels, registry=self.registry, buckets=DURATION_BUCKETS
                )
            else:
                base = name.removesuffix("_total") if spec.kind is Counter else name
                self._metrics[name] = spec.kind(base, spec.help, spec.labels, registry=self.registry)

    def _child(self, name: str, labels: dict[str, str]):
        metric = self._metrics[name]
        return metric.labels(**labels) if labels else metric

    def observe(self, name: str, value: float, **labels: str) -> None:
        self._child(name, labels).observe(value)

    def set(self, name: str, value: float, **labels: str) -> None:
        self._child(name, labels).set(value)

    def inc(self, name: str, by: float = 1, **labels: str) -> None:
        self._child(name, labels).inc(by)

    def get(self, name: str, **labels: str) -> float:
        return self.registry.get_sample_value(name, labels) or 0.0

    def total(self, name: str, **labels: str) -> float:
        """The sum of a sample over every label value not given (e.g. both IP families)."""
        return sum(
            s.value
            for m in self.registry.collect()
            for s in m.samples
            if s.name == name and labels.items() <= s.labels.items()
        )

    def text(self) -> str:
        """The exposition text (format 0.0.4) that /metrics serves."""
        return prometheus_client.generate_latest(self.registry).decode()
