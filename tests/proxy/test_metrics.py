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
    v4 = {"ip_family": "IPv4"}
    m.inc("kubeproxy_sync_proxy_rules_iptables_restore_failures_total", **v4)
    m.observe("kubeproxy_sync_proxy_rules_duration_seconds", 0.003, **v4)
    m.set("kubeproxy_sync_proxy_rules_iptables_total", 12, table="nat", **v4)
    m.set("kubeproxy_sync_proxy_rules_no_local_endpoints_total", 1, traffic_policy="external", **v4)
    page = m.text()
    got = samples(page)
    assert got['kubeproxy_sync_proxy_rules_iptables_restore_failures_total{ip_family="IPv4"}'] == 1
    assert got['kubeproxy_sync_proxy_rules_duration_seconds_bucket{ip_family="IPv4",le="0.004"}'] == 1
    assert got['kubeproxy_sync_proxy_rules_duration_seconds_bucket{ip_family="IPv4",le="0.002"}'] == 0
    assert got['kubeproxy_sync_proxy_rules_duration_seconds_count{ip_family="IPv4"}'] == 1
    assert got['kubeproxy_sync_proxy_rules_iptables_total{ip_family="IPv4",table="nat"}'] == 12
    assert got['kubeproxy_sync_proxy_rules_no_local_endpoints_total{ip_family="IPv4",traffic_policy="external"}'] == 1
    assert "# TYPE kubeproxy_sync_proxy_rules_iptables_restore_failures_total counter" in page
    assert "# TYPE kubeproxy_sync_proxy_rules_iptables_total gauge" in page
    assert "_created" not in page  # kube-proxy has no such series
    assert m.get("kubeproxy_sync_proxy_rules_iptables_restore_failures_total", **v4) == 1
    assert m.get("kubeproxy_sync_proxy_rules_iptables_total", table="nat", **v4) == 12


def test_dual_stack_reports_each_family_not_the_last_one():
    """Two proxiers (one per family) share the daemon's registry: each family's rule count is
    its own series (kube-proxy's ip_family label), and failures add up for /healthz."""
    from proxy.metaproxier import MetaProxier
    from proxy.model import NodeContext
    from proxy.proxier import Proxier
    from proxy.trackers import Trackers

    class Tx:
        def __init__(self, rules: int):
            self.rules = rules

        def rule_counts(self) -> dict[str, int]:
            return {"nat": self.rules}

    class Backend:
        mode = "fake"

        def __init__(self, rules: int):
            self.rules = rules

        def render(self, model, changed, full):
            return Tx(self.rules)

        def apply(self, tx) -> None:
            pass

    m = Metrics()
    proxiers = []
    for family, rules in ((4, 40), (6, 6)):
        trackers = Trackers("n1")
        trackers.synced = True
        proxiers.append(Proxier(NodeContext(name="n1", family=family), Backend(rules), trackers, m,  # type: ignore[arg-type]
                                clean_conntrack=False))  # fmt: skip
    MetaProxier(proxiers, m).sync()
    got = samples(m.text())
    assert got['kubeproxy_sync_proxy_rules_iptables_total{ip_family="IPv4",table="nat"}'] == 40
    assert got['kubeproxy_sync_proxy_rules_iptables_total{ip_family="IPv6",table="nat"}'] == 6
    assert got['kubeproxy_sync_full_proxy_rules_duration_seconds_count{ip_family="IPv6"}'] == 1
    m.inc("kubeproxy_sync_proxy_rules_iptables_restore_failures_total", ip_family="IPv4")
    m.inc("kubeproxy_sync_proxy_rules_iptables_restore_failures_total", ip_family="IPv6")
    assert m.total("kubeproxy_sync_proxy_rules_iptables_restore_failures_total") == 2


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
