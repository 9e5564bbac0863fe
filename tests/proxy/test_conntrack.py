"""UDP conntrack clean-up decisions (kube-proxy's conntrack/cleanup_test.go facts, in podnet's
words), without a kernel: which entries a change of a UDP service port deletes."""

from __future__ import annotations

from proxy.conntrack import Entry, parse, stale_entries, stale_flows
from proxy.model import NodeContext, build_service
from proxy.objects import Endpoint, EndpointPort, EndpointSlice, Service, ServicePort

NODE = NodeContext(name="n1")
CIP, EXT, LBIP = "10.96.0.10", "192.168.99.1", "1.2.3.4"


def model(endpoints=(), protocol="UDP"):
    svc = Service("ns", "dns", type="LoadBalancer", cluster_ips=(CIP,), external_ips=(EXT,), load_balancer_ips=(LBIP,),
                  ports=(ServicePort("dns", protocol, 53, 30053),))  # fmt: skip
    eps = tuple(Endpoint((ip,), ready=ready, serving=serving, terminating=not ready, node_name="n2")
                for ip, ready, serving in endpoints)  # fmt: skip
    slices = [EndpointSlice("ns", "dns-1", "dns", "IPv4", eps, (EndpointPort("dns", protocol, 5353),))] if eps else []
    return next(iter(build_service(svc, slices, NODE).values()))


def entry(dst, dport, reply_src):
    return Entry("10.0.0.7", dst, 40000, dport, reply_src)


ENTRIES = [
    entry(CIP, 53, "10.244.1.1"),  # 0: to a kept endpoint
    entry(CIP, 53, "10.244.2.2"),  # 1: to a removed endpoint
    entry(CIP, 53, "10.244.3.3"),  # 2: to a terminating but serving endpoint
    entry(EXT, 53, "10.244.2.2"),  # 3: external IP, removed endpoint
    entry(LBIP, 53, "10.244.2.2"),  # 4: LB IP, removed endpoint
    entry("192.168.0.2", 30053, "10.244.2.2"),  # 5: node port, removed endpoint
    entry("192.168.0.2", 30053, "10.244.1.1"),  # 6: node port, kept endpoint
    entry(CIP, 53, CIP),  # 7: made while there was no endpoint (never DNATed)
    entry(CIP, 54, "10.244.2.2"),  # 8: another port of the same address: not this service port
    entry("10.96.0.11", 53, "10.244.2.2"),  # 9: another Service
]


def deleted(old, new):
    return sorted(ENTRIES.index(e) for e in stale_entries(ENTRIES, stale_flows(old, new)))


def test_removed_endpoints_lose_their_entries_serving_ones_keep_theirs():
    old = model([("10.244.1.1", True, True), ("10.244.2.2", True, True), ("10.244.3.3", True, True)])
    new = model([("10.244.1.1", True, True), ("10.244.3.3", False, True)])  # .3 terminating, still serving
    assert deleted(old, new) == [1, 3, 4, 5, 7]


def test_slice_deleted_removes_every_entry_of_the_service_port():
    old = model([("10.244.1.1", True, True)])
    assert deleted(old, model([])) == [0, 1, 2, 3, 4, 5, 6, 7]


def test_service_deleted_removes_every_entry():
    assert deleted(model([("10.244.1.1", True, True)]), None) == [0, 1, 2, 3, 4, 5, 6, 7]


def test_first_endpoint_clears_entries_made_without_one():
    assert 7 in deleted(model([]), model([("10.244.1.1", True, True)]))


def test_tcp_is_never_cleaned():
    assert stale_flows(model([("10.244.1.1", True, True)], "TCP"), None) == []


def test_parse_conntrack_listing():
    text = (
        "udp      17 29 src=10.0.0.7 dst=10.96.0.10 sport=40000 dport=53 [UNREPLIED] src=10.244.2.2 "
        "dst=10.0.0.7 sport=5353 dport=40000 mark=0 use=1\nconntrack v1.4.7 (conntrack-tools): 1 flow entries\n"
    )
    assert parse(text) == [Entry("10.0.0.7", CIP, 40000, 53, "10.244.2.2")]
