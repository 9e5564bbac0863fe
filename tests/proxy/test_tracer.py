"""kube-proxy's packet-flow facts as tables, traced over the plan without a kernel (no root, no
namespaces: milliseconds). The same facts run with real packets in test_packet_flows.py.

The cluster of these tables:

    pods 10.0.0.0/8; this node "node-a" 192.168.0.2 (primary) and 192.168.1.2 (secondary)
    and fd00::2; service CIDRs 172.30.0.0/16 and fd30::/108; outside clients in
    203.0.113.0/24, of which loadBalancerSourceRanges admits 203.0.113.0/25.
"""

from __future__ import annotations

import json
import time

import pytest

from proxy.model import NodeContext, ProxyModel, node_context_with
from proxy.objects import load_text
from proxy.source import object_key
from proxy.tracer import Packet, Tracer
from proxy.trackers import Trackers

NODE_IP, NODE_IP_ALT, NODE_IP6 = "192.168.0.2", "192.168.1.2", "fd00::2"
POD, POD6 = "10.0.0.5", "fd10::5"  # a client pod (no endpoint of anything)
OUTSIDE, OUTSIDE_BLOCKED = "203.0.113.10", "203.0.113.200"


def svc(name, cluster_ip, ports, families=None, **spec):
    status = spec.pop("status", None)
    ips = cluster_ip if isinstance(cluster_ip, list) else [cluster_ip]
    obj = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": "ns"},
           "spec": {"clusterIP": ips[0], "clusterIPs": ips, "ports": ports, **spec}}  # fmt: skip
    if status:
        obj["status"] = status
    return obj


def eps(service, endpoints, port=80, name="p80", family="IPv4", slice_name=""):
    return {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": slice_name or f"{service}-{family.lower()}",
            "namespace": "ns",
            "labels": {"kubernetes.io/service-name": service},
        },
        "addressType": family,
        "endpoints": [
            {"addresses": [ip], "nodeName": node, **({"conditions": cond[0]} if cond else {})}
            for ip, node, *cond in endpoints
        ],
        "ports": [{"name": name, "port": port, "protocol": "TCP"}],
    }


P80 = [{"name": "p80", "port": 80, "nodePort": 3001}]
LB = {"loadBalancer": {"ingress": [{"ip": "1.2.3.4"}]}}
CIDR_OBJECT = {"apiVersion": "networking.k8s.io/v1", "kind": "ServiceCIDR", "metadata": {"name": "kubernetes"},
               "spec": {"cidrs": ["172.30.0.0/16", "fd30::/108"]}}  # fmt: skip

OBJECTS = [
    CIDR_OBJECT,
    # svc1: ClusterIP, two endpoints elsewhere and one here
    svc("svc1", "172.30.0.41", [{"name": "p80", "port": 80}]),
    eps("svc1", [("10.180.0.1", "node-a"), ("10.180.1.1", "node-b"), ("10.180.2.1", "node-c")]),
    # svc2: LoadBalancer, policy Local, a local and a remote endpoint, source ranges that hold the node IP
    svc(
        "svc2",
        "172.30.0.42",
        P80,
        type="LoadBalancer",
        externalTrafficPolicy="Local",
        externalIPs=["192.168.99.22"],
        loadBalancerSourceRanges=["203.0.113.0/25", "192.168.0.0/24"],
        status=LB,
    ),
    eps("svc2", [("10.180.0.2", "node-a"), ("10.180.1.2", "node-b")]),
    # svc3: LoadBalancer, policy Local, no local endpoint
    svc(
        "svc3",
        "172.30.0.43",
        [{"name": "p80", "port": 80, "nodePort": 3003}],
        type="LoadBalancer",
        externalTrafficPolicy="Local",
        status={"loadBalancer": {"ingress": [{"ip": "5.6.7.8"}]}},
    ),
    eps("svc3", [("10.180.1.3", "node-b")]),
    # svc4: no endpoints at all
    svc(
        "svc4",
        "172.30.0.44",
        [{"name": "p80", "port": 80, "nodePort": 3004}],
        type="NodePort",
        externalIPs=["192.168.99.44"],
    ),
    # svc5: internalTrafficPolicy Local, no local endpoint
    svc("svc5", "172.30.0.45", [{"name": "p80", "port": 80}], internalTrafficPolicy="Local"),
    eps("svc5", [("10.180.1.5", "node-b")]),
    # svc6: source ranges that do not hold the node IP; a second ingress with ipMode Proxy
    svc(
        "svc6",
        "172.30.0.46",
        [{"name": "p80", "port": 80, "nodePort": 3006}],
        type="LoadBalancer",
        loadBalancerSourceRanges=["203.0.113.0/25"],
        status={"loadBalancer": {"ingress": [{"ip": "9.10.11.12"}, {"ip": "9.10.11.13", "ipMode": "Proxy"}]}},
    ),
    eps("svc6", [("10.180.1.6", "node-b")]),
    # svc7: policy Local, every endpoint terminating (kube-proxy falls back to the serving
    # ones, cluster-wide and on this node alike; an unknown serving condition means serving)
    svc(
        "svc7",
        "172.30.0.47",
        [{"name": "p80", "port": 80, "nodePort": 3007}],
        type="NodePort",
        externalTrafficPolicy="Local",
    ),
    eps(
        "svc7",
        [
            ("10.180.0.7", "node-a", {"ready": False, "terminating": True}),
            ("10.180.1.7", "node-b", {"ready": False, "serving": True, "terminating": True}),
            ("10.180.2.7", "node-c", {"ready": False, "serving": False, "terminating": True}),
        ],
    ),
    # svc8: a load balancer with source ranges and no endpoints
    svc(
        "svc8",
        "172.30.0.50",
        [{"name": "p80", "port": 80, "nodePort": 3008}],
        type="LoadBalancer",
        loadBalancerSourceRanges=["203.0.113.0/25"],
        status={"loadBalancer": {"ingress": [{"ip": "9.10.11.50"}]}},
    ),
    # headless and ExternalName: no rules; the ExternalName's clusterIP is not a live one
    svc("headless", "None", [{"name": "p80", "port": 80}]),
    eps("headless", [("10.180.1.7", "node-b")]),
    {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "extname", "namespace": "ns"},
        "spec": {
            "type": "ExternalName",
            "externalName": "example.com",
            "clusterIP": "172.30.0.48",
            "ports": [{"name": "p80", "port": 80}],
        },
    },
    # svc9: dual stack
    svc(
        "svc9",
        ["172.30.0.49", "fd30::49"],
        [{"name": "p80", "port": 80, "nodePort": 3009}],
        type="NodePort",
        ipFamilyPolicy="RequireDualStack",
    ),
    eps("svc9", [("10.180.1.9", "node-b")]),
    eps("svc9", [("fd80::9", "node-b")], family="IPv6"),
]


def tracer(mode: str, objects=OBJECTS, **node_opts) -> Tracer:
    trackers = Trackers("node-a")
    for obj in load_text(json.dumps(objects), "table").objects:  # JSON: parsed in C
        trackers.update(object_key(obj), type(obj), obj)
    changes = trackers.drain()
    models = []
    for family, node_ips, cidr, local in ((4, (NODE_IP,), "10.0.0.0/8", (NODE_IP, NODE_IP_ALT, "127.0.0.1")),
                                          (6, (NODE_IP6,), "fd10::/64", (NODE_IP6, "::1"))):  # fmt: skip
        base = NodeContext(name="node-a", node_ips=node_ips, cluster_cidrs=(cidr,), local_addresses=local,
                           family=family, **node_opts)  # fmt: skip
        model = ProxyModel(node_context_with(base, trackers))
        model.update(trackers, changes)
        models.append(model)
    return Tracer(models, mode)


BOTH = ("iptables", "nftables")

# (name, source, dest, port, from_node, expected) — expected is one string per mode, or a dict
FLOWS = [
    # ClusterIP
    ("pod to cluster IP", POD, "172.30.0.41", 80, False, "10.180.0.1:80, 10.180.1.1:80, 10.180.2.1:80"),
    (
        "outside to cluster IP is masqueraded",
        OUTSIDE,
        "172.30.0.41",
        80,
        False,
        "10.180.0.1:80, 10.180.1.1:80, 10.180.2.1:80 (masqueraded)",
    ),
    (
        "node to cluster IP is masqueraded",
        NODE_IP,
        "172.30.0.41",
        80,
        True,
        "10.180.0.1:80, 10.180.1.1:80, 10.180.2.1:80 (masqueraded)",
    ),
    (
        "endpoint to its own Service: hairpin, masqueraded",
        "10.180.0.1",
        "172.30.0.41",
        80,
        False,
        "10.180.0.1:80, 10.180.1.1:80, 10.180.2.1:80 (masqueraded)",
    ),
    ("cluster IP, unknown port", POD, "172.30.0.41", 81, False, {"iptables": "ACCEPT", "nftables": "REJECT"}),
    # externalTrafficPolicy Local, local endpoint
    ("outside to LB (Local): local endpoint, source kept", OUTSIDE, "1.2.3.4", 80, False, "10.180.0.2:80"),
    ("outside to node port (Local)", OUTSIDE, NODE_IP, 3001, False, "10.180.0.2:80"),
    ("outside to external IP (Local)", OUTSIDE, "192.168.99.22", 80, False, "10.180.0.2:80"),
    (
        "pod to external IP (Local): short-circuit to every endpoint",
        POD,
        "192.168.99.22",
        80,
        False,
        "10.180.0.2:80, 10.180.1.2:80",
    ),
    ("pod to LB: source ranges apply to pods too", POD, "1.2.3.4", 80, False, "DROP"),
    (
        "node to LB (Local): short-circuit, masqueraded",
        NODE_IP,
        "1.2.3.4",
        80,
        True,
        "10.180.0.2:80, 10.180.1.2:80 (masqueraded)",
    ),
    # loadBalancerSourceRanges
    ("outside, source range not admitted", OUTSIDE_BLOCKED, "1.2.3.4", 80, False, "DROP"),
    (
        "LB IP as source, a range holds the node IP (allowFromNode)",
        "1.2.3.4",
        "1.2.3.4",
        80,
        True,
        "10.180.0.2:80, 10.180.1.2:80 (masqueraded)",
    ),
    ("node port is not subject to source ranges", OUTSIDE_BLOCKED, NODE_IP, 3001, False, "10.180.0.2:80"),
    ("LB IP as source, no range holds the node IP", "9.10.11.12", "9.10.11.12", 80, True, "DROP"),
    ("admitted source to LB (Cluster): masqueraded", OUTSIDE, "9.10.11.12", 80, False, "10.180.1.6:80 (masqueraded)"),
    ("ipMode Proxy: no rule at all", OUTSIDE, "9.10.11.13", 80, False, "ACCEPT"),
    # externalTrafficPolicy Local, no local endpoint
    ("outside to LB (Local, none here): dropped", OUTSIDE, "5.6.7.8", 80, False, "DROP"),
    ("outside to node port (Local, none here): dropped", OUTSIDE, NODE_IP, 3003, False, "DROP"),
    ("pod to LB (Local, none here): short-circuit", POD, "5.6.7.8", 80, False, "10.180.1.3:80"),
    (
        "node to LB (Local, none here): short-circuit, masqueraded",
        NODE_IP,
        "5.6.7.8",
        80,
        True,
        "10.180.1.3:80 (masqueraded)",
    ),
    (
        "node to its node port (Local, none here): short-circuit",
        NODE_IP,
        NODE_IP,
        3003,
        True,
        "10.180.1.3:80 (masqueraded)",
    ),
    # no endpoints
    ("no endpoints: cluster IP rejected", POD, "172.30.0.44", 80, False, "REJECT"),
    ("no endpoints: external IP rejected", OUTSIDE, "192.168.99.44", 80, False, "REJECT"),
    ("no endpoints: node port rejected", OUTSIDE, NODE_IP, 3004, False, "REJECT"),
    ("internalTrafficPolicy Local, none here: dropped", POD, "172.30.0.45", 80, False, "DROP"),
    # every endpoint terminating: the serving ones are used instead of a REJECT
    ("all terminating: cluster IP to the serving ones", POD, "172.30.0.47", 80, False, "10.180.0.7:80, 10.180.1.7:80"),
    ("all terminating: node port (Local) to the one here", OUTSIDE, NODE_IP, 3007, False, "10.180.0.7:80"),
    # source ranges on a Service without endpoints: kube-proxy's modes differ (NodePlan)
    ("no endpoints, source ranges: admitted source rejected", OUTSIDE, "9.10.11.50", 80, False, "REJECT"),
    (
        "no endpoints, source ranges: source not admitted",
        OUTSIDE_BLOCKED,
        "9.10.11.50",
        80,
        False,
        {"iptables": "REJECT", "nftables": "DROP"},
    ),
    # node port addresses (unset)
    (
        "node port on a secondary node address",
        OUTSIDE,
        NODE_IP_ALT,
        3006,
        False,
        {"iptables": "10.180.1.6:80 (masqueraded)", "nftables": "ACCEPT"},
    ),
    (
        "node port on localhost",
        NODE_IP,
        "127.0.0.1",
        3006,
        True,
        {"iptables": "10.180.1.6:80 (masqueraded)", "nftables": "ACCEPT"},
    ),
    # unallocated service addresses, headless, ExternalName
    ("unallocated service address", POD, "172.30.0.99", 80, False, {"iptables": "ACCEPT", "nftables": "DROP"}),
    ("ExternalName clusterIP is not live", POD, "172.30.0.48", 80, False, {"iptables": "ACCEPT", "nftables": "DROP"}),
    ("an address outside every service CIDR", POD, "8.8.8.8", 53, False, "ACCEPT"),
    # dual stack
    ("IPv6 pod to IPv6 cluster IP", POD6, "fd30::49", 80, False, "[fd80::9]:80"),
    ("IPv4 pod to the same Service's IPv4 cluster IP", POD, "172.30.0.49", 80, False, "10.180.1.9:80"),
    ("outside to IPv6 node port", "2001:db8::1", NODE_IP6, 3009, False, "[fd80::9]:80 (masqueraded)"),
    ("node to its IPv6 node port", NODE_IP6, NODE_IP6, 3009, True, "[fd80::9]:80 (masqueraded)"),
    ("unallocated IPv6 service address", POD6, "fd30::99", 80, False, {"iptables": "ACCEPT", "nftables": "DROP"}),
]


@pytest.mark.parametrize("mode", BOTH)
@pytest.mark.parametrize("flow", FLOWS, ids=[f[0] for f in FLOWS])
def test_packet_flow(mode, flow, tracers={}):  # noqa: B006 (one tracer per mode, built once)
    name, source, dest, port, from_node, expected = flow
    if mode not in tracers:
        tracers[mode] = tracer(mode)
    want = expected[mode] if isinstance(expected, dict) else expected
    assert str(tracers[mode].trace(Packet(source, dest, port, from_node=from_node))) == want, name


@pytest.mark.parametrize("mode", BOTH)
def test_service_cidr_from_configuration(mode):
    """Without ServiceCIDR objects, the configured range (--service-cidr) says what is unallocated."""
    objects = [o for o in OBJECTS if o is not CIDR_OBJECT]
    plain = tracer(mode, objects)
    assert str(plain.trace(Packet(POD, "172.30.0.99", 80))) == "ACCEPT"
    configured = tracer(mode, objects, service_cidrs=("172.30.0.0/16",))
    assert str(configured.trace(Packet(POD, "172.30.0.99", 80))) == {"iptables": "ACCEPT", "nftables": "DROP"}[mode]


@pytest.mark.parametrize("mode", BOTH)
def test_masquerade_all_and_explicit_nodeport_addresses(mode):
    t = tracer(mode, masquerade_all=True, nodeport_addresses=(f"{NODE_IP_ALT}/32",))
    assert str(t.trace(Packet(POD, "172.30.0.41", 80))).endswith("(masqueraded)")
    assert str(t.trace(Packet(OUTSIDE, NODE_IP_ALT, 3006))) == "10.180.1.6:80 (masqueraded)"
    assert str(t.trace(Packet(OUTSIDE, NODE_IP, 3006))) == "ACCEPT"


def test_the_whole_table_is_fast():
    start = time.perf_counter()
    for mode in BOTH:
        t = tracer(mode)
        for _, source, dest, port, from_node, _ in FLOWS:
            t.trace(Packet(source, dest, port, from_node=from_node))
    assert time.perf_counter() - start < 0.2  # both modes, every flow, model building included
