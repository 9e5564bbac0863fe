"""The proxy's metrics page through prometheus-client: kube-proxy's names, no extra series,
one registry per proxier; and the daemons' JSON log lines."""

from __future__ import annotations

import io
import json
import logging

from podnet import logs
from proxy.metrics import Metrics


def samples(text: str) -> dict[str, float]:
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.rpartition(" ")
            out[key] = float(value)
    return out


def test_kube_proxy_names_and_labels():
    m = Metrics()
    m.inc("kubeproxy_sync_proxy_rules_iptables_restore_failures_total")
    m.observe("kubeproxy_sync_proxy_rules_duration_seconds", 0.003)
    m.set("kubeproxy_sync_proxy_rules_iptables_total", 12, table="nat")
    m.set("kubeproxy_sync_proxy_rules_no_local_endpoints_total", 1, traffic_policy="external")
    page = m.text()
    got = samples(page)
    assert got["kubeproxy_sync_proxy_rules_iptables_restore_failures_total"] == 1
    assert got['kubeproxy_sync_proxy_rules_duration_seconds_bucket{le="0.004"}'] == 1
    assert got['kubeproxy_sync_proxy_rules_duration_seconds_bucket{le="0.002"}'] == 0
    assert got["kubeproxy_sync_proxy_rules_duration_seconds_count"] == 1
    assert got['kubeproxy_sync_proxy_rules_iptables_total{table="nat"}'] == 12
    assert got['kubeproxy_sync_proxy_rules_no_local_endpoints_total{traffic_policy="external"}'] == 1
    assert "# TYPE kubeproxy_sync_proxy_rules_iptables_restore_failures_total counter" in page
    assert "# TYPE kubeproxy_sync_proxy_rules_iptables_total gauge" in page
    assert "_created" not in page  # kube-proxy has no such series
    assert m.get("kubeproxy_sync_proxy_rules_iptables_restore_failures_total") == 1
    assert m.get("kubeproxy_sync_proxy_rules_iptables_total", table="nat") == 12


def test_each_proxier_counts_only_its_own():
    a, b = Metrics(), Metrics()
    a.inc("kubeproxy_sync_proxy_rules_service_changes_total", 3)
    assert b.get("kubeproxy_sync_proxy_rules_service_changes_total") == 0


def test_json_log_lines_have_kubernetes_fields():
    stream = io.StringIO()
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    try:
        logs.setup("podnet-proxy", "json", logging.INFO, stream)
        logging.getLogger("podnet.proxy").info("synced %d", 3)
    finally:
        root.handlers[:], level = saved
        root.setLevel(level)
    entry = json.loads(stream.getvalue())
    assert entry["msg"] == "synced 3" and entry["v"] == 0 and entry["logger"] == "podnet.proxy"
    assert entry["caller"].startswith("test_metrics.py:") and isinstance(entry["ts"], float)
