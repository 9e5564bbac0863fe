"""The daemon's syncing, checked in a node namespace: the objects directory is watched, bursts are
batched, partial syncs leave other Services' chains alone, a refused restore keeps the previous
rules and is retried, UDP clients move at once, health and metrics tell the truth."""

from __future__ import annotations

import os
import re
import time
from collections import Counter

import pytest

from tests.support.proxy_lab import NODE_IP, PODS, endpoint, endpoint_slice, service

pytestmark = pytest.mark.integration
V4 = 'ip_family="IPv4"'  # the label of the IPv4 proxier's series (kube-proxy's, since 1.33)

CIP = "10.96.0.10"
HTTP = [{"name": "http", "port": 80}]
EP_HTTP = [{"name": "http", "port": 8080}]
FAST = ("--iptables-min-sync-period=500ms", "--iptables-sync-period=2s")


def web(pods, name="web", cip=CIP, **spec):
    ports = spec.pop("ports", HTTP)
    ep_ports = spec.pop("ep_ports", EP_HTTP)
    return [service(name, cip, ports, **spec), endpoint_slice(name, [endpoint(p) for p in pods], ep_ports)]


def served_by(lab, where="pc", cip=CIP, port=80, count=10) -> Counter:
    return Counter(r.get("name") or r["error"] for r in lab.probe(where, "tcp", cip, port, count, timeout=1))


def syncs(lab, kind: str) -> float:
    return lab.metrics().get(f"kubeproxy_sync_{kind}_proxy_rules_duration_seconds_count{{{V4}}}", 0)


def started(lab, mode, *extra) -> None:
    lab.start_daemon(*FAST, *extra, mode=mode)
    assert lab.wait_for(lambda: lab.http("node", "http://127.0.0.1:10249/metrics").get("status") == 200)
    assert lab.wait_for(lambda: syncs(lab, "full") >= 1), lab.stop_daemon()


def test_directory_is_watched_and_bursts_are_batched(lab, mode):
    started(lab, mode, "--iptables-min-sync-period=1s")
    lab.write("web.yaml", *web(["e1"]))
    assert lab.wait_for(lambda: served_by(lab, count=2) == {"e1": 2}), lab.stop_daemon()
    before = syncs(lab, "partial")
    for i in range(5):  # a burst: five changes within half a second
        lab.write(f"burst-{i}.yaml", *web(["e2"], name=f"b{i}", cip=f"10.96.1.{i + 1}"))
        time.sleep(0.1)
    assert lab.wait_for(lambda: served_by(lab, cip="10.96.1.5", count=1) == {"e2": 1})
    time.sleep(1.5)
    after = syncs(lab, "partial")
    assert 1 <= after - before <= 2, (before, after)
    # a file rewritten with the same objects changes nothing, so nothing is applied
    lab.write("web.yaml", *web(["e1"]))
    time.sleep(2.5)
    assert syncs(lab, "partial") == after
    lab.stop_daemon()


def _counters(save: str, chain: str) -> list[int]:
    """Packet counters of a chain's rules in `iptables-save -c` output."""
    out = []
    for line in save.splitlines():
        m = re.match(r"\[(\d+):\d+\] -A (\S+) ", line)
        if m and m.group(2) == chain:
            out.append(int(m.group(1)))
    return out


def _svc_chain(save: str, cluster_ip: str) -> str:
    m = re.search(rf"-A PODNET-SERVICES -d {re.escape(cluster_ip)}/32 .* -j (PODNET-SVC-\w+)", save)
    assert m, save
    return m.group(1)


def test_partial_sync_rewrites_only_the_changed_service(lab, mode):
    lab.write("a.yaml", *web(["e1", "e2"], name="a", cip="10.96.0.21"))
    lab.write("b.yaml", *web(["e1"], name="b", cip="10.96.0.22"))
    if mode == "nftables":
        return _nft_partial_sync_sends_only_the_changed_service(lab)
    started(lab, mode)
    assert served_by(lab, cip="10.96.0.21", count=6).total() == 6
    save = lab.node.run("iptables-save", "-c", "-t", "nat").stdout
    a_chain = _svc_chain(save, "10.96.0.21")
    a_before = _counters(save, a_chain)
    assert sum(a_before) >= 6
    partial = syncs(lab, "partial")
    lab.write("b.yaml", *web(["e3"], name="b", cip="10.96.0.22"))
    assert lab.wait_for(lambda: syncs(lab, "partial") > partial)
    assert served_by(lab, cip="10.96.0.22", count=3) == {"e3": 3}
    save = lab.node.run("iptables-save", "-c", "-t", "nat").stdout
    # a's chain was not rewritten (a rewrite would have reset its counters)
    assert _counters(save, a_chain) == a_before
    assert syncs(lab, "full") == 1
    lab.stop_daemon()


def _nft_partial_sync_sends_only_the_changed_service(lab):
    started(lab, "nftables", "-v", "4")  # debug logging shows each transaction
    assert served_by(lab, cip="10.96.0.21", count=6).total() == 6
    partial = syncs(lab, "partial")
    lab.write("b.yaml", *web(["e3"], name="b", cip="10.96.0.22"))
    assert lab.wait_for(lambda: syncs(lab, "partial") > partial)
    assert served_by(lab, cip="10.96.0.22", count=3) == {"e3": 3}
    assert served_by(lab, cip="10.96.0.21", count=6).total() == 6
    assert syncs(lab, "full") == 1
    log = lab.stop_daemon()
    last = log.rsplit("nft transaction", 1)[1].split("podnet-proxy INFO")[0]
    # b's slot moved to e3 (and its hairpin pair); nothing of a's was sent again
    assert f"10.96.0.22 . 80 . 0 : {PODS['e3']} . 8080" in last, last
    assert "10.96.0.21" not in last and len(last.strip().splitlines()) <= 6, last


def test_udp_client_moves_at_once_when_its_endpoint_goes(lab, mode):
    ports = [{"name": "dns", "port": 53, "protocol": "UDP"}]
    ep_ports = [{"name": "dns", "port": 5353, "protocol": "UDP"}]
    lab.write("dns.yaml", *web(["e1", "e2"], name="dns", ports=ports, ep_ports=ep_ports))
    started(lab, mode)
    first = lab.probe("client", "udp", CIP, 53, 3, sport=40000)
    chosen = {r["name"] for r in first}
    assert len(chosen) == 1, first  # one conntrack entry: every datagram of this flow goes to one endpoint
    other = ({"e1", "e2"} - chosen).pop()
    partial = syncs(lab, "partial")
    lab.write("dns.yaml", *web([other], name="dns", ports=ports, ep_ports=ep_ports))
    assert lab.wait_for(lambda: syncs(lab, "partial") > partial)
    # the old endpoint's server still runs: only the conntrack clean-up moves this flow
    after = lab.probe("client", "udp", CIP, 53, 3, sport=40000)
    assert {r.get("name") for r in after} == {other}, after
    lab.stop_daemon()


def test_refused_restore_keeps_previous_rules_is_retried_and_shows(lab, mode):
    lab.write("web.yaml", *web(["e1"]))
    started(lab, mode)
    assert served_by(lab, count=2) == {"e1": 2}
    if mode == "nftables":
        return _nft_refused_transaction_is_retried_as_a_rebuild(lab)
    save = lab.node.run("iptables-save", "-t", "nat").stdout
    sep = re.search(rf"-A (PODNET-SEP-\w+) .*--to-destination {PODS['e1']}:8080", save).group(1)
    # someone else's rule refers to e1's chain: deleting that chain, and so the whole
    # transaction that moves the Service to e2, will be refused by the kernel
    lab.node.run("iptables", "-t", "nat", "-N", "TEST-BLOCKER")
    lab.node.run("iptables", "-t", "nat", "-A", "TEST-BLOCKER", "-j", sep)
    try:
        lab.write("web.yaml", *web(["e2"]))
        assert lab.wait_for(
            lambda: lab.metrics().get(f"kubeproxy_sync_proxy_rules_iptables_restore_failures_total{{{V4}}}", 0) >= 2
        )
        assert served_by(lab, count=3) == {"e1": 3}  # the previous rules are all still there
        assert lab.wait_for(lambda: lab.http("node", "http://127.0.0.1:10256/healthz")["status"] == 503, timeout=10)
    finally:
        lab.node.run("iptables", "-t", "nat", "-F", "TEST-BLOCKER")
        lab.node.run("iptables", "-t", "nat", "-X", "TEST-BLOCKER")
    assert lab.wait_for(lambda: served_by(lab, count=2) == {"e2": 2}, timeout=10)
    assert lab.wait_for(lambda: lab.http("node", "http://127.0.0.1:10256/healthz")["status"] == 200)
    log = lab.stop_daemon()
    assert "sync failed (retrying" in log


def _nft_refused_transaction_is_retried_as_a_rebuild(lab):
    # a chain someone put in podnet's table matches the 1-endpoint count set the next sync
    # deletes: the kernel refuses that transaction. The retry rebuilds podnet's table (its
    # state is unknown after a failure), which removes what did not belong there.
    lab.node.run("nft", "add", "chain", "ip", "podnet", "test-blocker")
    lab.node.run("nft", "add", "rule", "ip", "podnet", "test-blocker", "ip", "daddr", ".", "th", "dport", "@int-tcp-1",
                 "accept")  # fmt: skip
    lab.write("web.yaml", *web(["e1", "e2"]))
    assert lab.wait_for(lambda: set(served_by(lab, count=12)) == {"e1", "e2"}, timeout=10)
    assert lab.metrics()[f"kubeproxy_sync_proxy_rules_iptables_restore_failures_total{{{V4}}}"] >= 1
    assert "test-blocker" not in lab.node.run("nft", "list", "table", "ip", "podnet").stdout
    assert lab.wait_for(lambda: lab.http("node", "http://127.0.0.1:10256/healthz")["status"] == 200)
    log = lab.stop_daemon()
    assert "sync failed (retrying" in log and "Device or resource busy" in log


def test_health_check_node_port_and_metrics(lab, mode):
    ports = [{"name": "http", "port": 80, "nodePort": 30080}]
    spec = {"type": "NodePort", "externalTrafficPolicy": "Local", "healthCheckNodePort": 32000, "ports": ports}
    lab.write("web.yaml", *web(["e1", "e2", "e3"], **spec))
    started(lab, mode)
    url = f"http://{NODE_IP}:32000/"
    r = lab.wait_for(lambda: (lambda x: x if x.get("status") == 200 else None)(lab.http("client", url)))
    assert r and '"localEndpoints": 2' in r["body"], r
    # e1 terminating (still serving), e2 gone: the health check counts ready endpoints only,
    # so the load balancer drains this node while e1 finishes (kube-proxy's LocalReadyEndpoints)
    svc, eps = web(["e1", "e3"], **spec)
    eps["endpoints"][0]["conditions"] = {"ready": False, "serving": True, "terminating": True}
    lab.write("web.yaml", svc, eps)
    assert lab.wait_for(lambda: lab.http("client", url).get("status") == 503)
    assert '"localEndpoints": 0' in lab.http("client", url)["body"]
    lab.write("web.yaml", *web(["e3"], **spec))
    # no local endpoint at all now (not even a terminating one): once the daemon has synced
    # the file, the gauge counts this Service
    no_local = f'kubeproxy_sync_proxy_rules_no_local_endpoints_total{{{V4},traffic_policy="external"}}'
    m = lab.wait_for(lambda: (lambda x: x if x.get(no_local) == 1 else None)(lab.metrics())) or lab.metrics()
    for name in (
        f"kubeproxy_sync_proxy_rules_duration_seconds_count{{{V4}}}",
        f"kubeproxy_sync_proxy_rules_last_timestamp_seconds{{{V4}}}",
        f"kubeproxy_sync_proxy_rules_iptables_restore_failures_total{{{V4}}}",
        f'kubeproxy_sync_proxy_rules_iptables_total{{{V4},table="{"podnet" if mode == "nftables" else "nat"}"}}',
        f'kubeproxy_sync_proxy_rules_no_local_endpoints_total{{{V4},traffic_policy="external"}}',
    ):
        assert name in m, name
    assert m[no_local] == 1, m
    assert time.time() - m[f"kubeproxy_sync_proxy_rules_last_timestamp_seconds{{{V4}}}"] < 30
    lab.stop_daemon()


def test_cleanup_removes_exactly_what_podnet_made(lab, mode):
    node = lab.node
    # unrelated rules of our own, in the built-in chains and in a chain of their own
    node.run("iptables", "-t", "filter", "-A", "INPUT", "-p", "tcp", "--dport", "22", "-j", "ACCEPT")
    node.run("iptables", "-t", "filter", "-N", "TEST-MINE")
    node.run("iptables", "-t", "filter", "-A", "TEST-MINE", "-s", "10.1.2.3", "-j", "DROP")
    node.run("iptables", "-t", "filter", "-A", "FORWARD", "-j", "TEST-MINE")
    node.run("iptables", "-t", "nat", "-A", "POSTROUTING", "-s", "172.16.0.0/12", "-j", "MASQUERADE")
    node.run("iptables", "-t", "nat", "-A", "PREROUTING", "-p", "udp", "--dport", "999", "-j", "REDIRECT")
    try:
        before = _tables(node)
        lab.write("web.yaml", *web(["e1", "e3"], type="LoadBalancer", externalTrafficPolicy="Local",
                                   ports=[{"name": "http", "port": 80, "nodePort": 30080}],
                                   externalIPs=["192.168.50.1"], loadBalancerSourceRanges=["192.168.1.0/24"],
                                   status={"loadBalancer": {"ingress": [{"ip": "192.168.60.1"}]}}))  # fmt: skip
        lab.write("empty.yaml", service("empty", "10.96.0.11", HTTP))
        r = lab.once(mode=mode)
        assert r.returncode == 0, r.stderr
        during = _tables(node)
        assert ("table ip podnet" if mode == "nftables" else "PODNET-") in during and during != before
        r = node.run(lab.proxy_args()[0], "--cleanup", "--proxy-mode", mode, check=False)
        assert r.returncode == 0, r.stderr
        assert _tables(node) == before
    finally:
        node.run("iptables", "-t", "filter", "-D", "FORWARD", "-j", "TEST-MINE", check=False)
        node.run("iptables", "-t", "filter", "-F", "TEST-MINE", check=False)
        node.run("iptables", "-t", "filter", "-X", "TEST-MINE", check=False)
        node.run("iptables", "-t", "filter", "-D", "INPUT", "-p", "tcp", "--dport", "22", "-j", "ACCEPT", check=False)
        node.run("iptables", "-t", "nat", "-D", "POSTROUTING", "-s", "172.16.0.0/12", "-j", "MASQUERADE", check=False)
        node.run("iptables", "-t", "nat", "-D", "PREROUTING", "-p", "udp", "--dport", "999", "-j", "REDIRECT",
                 check=False)  # fmt: skip


def _tables(node) -> str:
    """iptables-save without its timestamps and counters."""
    lines = node.run("iptables-save").stdout.splitlines()
    lines += [f"table {t}" for t in node.run("nft", "list", "tables").stdout.split("table ")[1:]]
    return "\n".join(re.sub(r"\[\d+:\d+\]", "", line) for line in lines if not line.startswith("#"))


def test_once_without_objects_dir_is_an_error(lab):
    r = lab.node.run(lab.proxy_args()[0], "--once", "--objects-dir", os.path.join(lab.objects_dir, "nope"), check=False)
    assert r.returncode != 0 and "not a directory" in r.stderr
