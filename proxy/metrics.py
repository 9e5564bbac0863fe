"""Prometheus metrics in the text exposition format, under kube-proxy's names where the meaning
is the same (subsystem `kubeproxy`)."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

DURATION_BUCKETS = (0.001, 0.002, 0.004, 0.008, 0.016, 0.032, 0.064, 0.128, 0.256, 0.512, 1.024, 2.048, 4.096,
                    8.192, 16.384)  # fmt: skip


@dataclass
class _Histogram:
    counts: list[int] = field(default_factory=lambda: [0] * len(DURATION_BUCKETS))
    total: float = 0.0
    n: int = 0

    def observe(self, value: float) -> None:
        for i, bound in enumerate(DURATION_BUCKETS):
            if value <= bound:
                self.counts[i] += 1
        self.total += value
        self.n += 1


HELP = {
    "kubeproxy_sync_proxy_rules_duration_seconds": ("histogram", "SyncProxyRules latency in seconds"),
    "kubeproxy_sync_full_proxy_rules_duration_seconds": ("histogram", "Full SyncProxyRules latency in seconds"),
    "kubeproxy_sync_partial_proxy_rules_duration_seconds": ("histogram", "Partial SyncProxyRules latency in seconds"),
    "kubeproxy_sync_proxy_rules_last_timestamp_seconds": ("gauge", "Last successful proxy rules sync"),
    "kubeproxy_sync_proxy_rules_last_queued_timestamp_seconds": (
        "gauge",
        "The last time a sync of proxy rules was queued",
    ),
    "kubeproxy_sync_proxy_rules_iptables_restore_failures_total": ("counter", "Proxy iptables restore failures"),
    "kubeproxy_sync_proxy_rules_iptables_partial_restore_failures_total": (
        "counter",
        "Cumulative proxy iptables partial restore failures",
    ),
    "kubeproxy_sync_proxy_rules_iptables_total": ("gauge", "Total number of iptables rules owned by podnet-proxy"),
    "kubeproxy_sync_proxy_rules_service_changes_total": ("counter", "Cumulative proxy rules Service changes"),
    "kubeproxy_sync_proxy_rules_endpoint_changes_total": ("counter", "Cumulative proxy rules Endpoint changes"),
    "kubeproxy_sync_proxy_rules_no_local_endpoints_total": (
        "gauge",
        "Number of services with a Local traffic policy and no endpoints",
    ),
    "podnet_proxy_invalid_objects": ("gauge", "Objects skipped as invalid in the last scan of the objects directory"),
}


class Metrics:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._hist: dict[str, _Histogram] = {}
        self._values: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}

    def observe(self, name: str, value: float) -> None:
        with self._lock:
            self._hist.setdefault(name, _Histogram()).observe(value)

    def set(self, name: str, value: float, **labels: str) -> None:
        with self._lock:
            self._values[(name, tuple(sorted(labels.items())))] = value

    def inc(self, name: str, by: float = 1, **labels: str) -> None:
        key = (name, tuple(sorted(labels.items())))
        with self._lock:
            self._values[key] = self._values.get(key, 0) + by

    def get(self, name: str, **labels: str) -> float:
        with self._lock:
            return self._values.get((name, tuple(sorted(labels.items()))), 0)

    def text(self) -> str:
        lines: list[str] = []
        with self._lock:
            names = sorted({n for n, _ in self._values} | set(self._hist))
            for name in names:
                kind, help_text = HELP.get(name, ("untyped", name))
                lines += [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}"]
                if name in self._hist:
                    h = self._hist[name]
                    for bound, count in zip(DURATION_BUCKETS, h.counts, strict=True):
                        lines.append(f'{name}_bucket{{le="{bound}"}} {count}')
                    lines += [f'{name}_bucket{{le="+Inf"}} {h.n}', f"{name}_sum {h.total}", f"{name}_count {h.n}"]
                for (n, labels), value in sorted(self._values.items()):
                    if n == name:
                        lab = ",".join(f'{k}="{v}"' for k, v in labels)
                        text = str(int(value)) if float(value).is_integer() else repr(float(value))
                        lines.append(f"{name}{{{lab}}} {text}" if lab else f"{name} {text}")
        return "\n".join(lines) + "\n"
