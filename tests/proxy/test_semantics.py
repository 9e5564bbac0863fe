"""kube-proxy's semantics, checked by what arrives: real TCP/UDP/SCTP traffic through the rules
a proxy programs inside a node namespace (see lab.py for the topology). One suite for every
proxy mode (`mode` fixture)."""

from __future__ import annotations

from collections import Counter

import pytest

from tests.support.proxy_lab import (
    CLIENT_IP,
    NODE_IP,
    PODS,
    endpoint,
    endpoint_slice,
    node_object,
    sctp_supported,
    service,
)

pytestmark = pytest.mark.integration

CIP = "10.96.0.10"
HTTP = [{"name": "http", "port": 80, "targetPort": 8080}]
EP_HTTP = [{"name": "http", "port": 8080, "protocol": "TCP"}]


def programmed(lab, mode, *objects_files, extra=()):
    for filename, objs in objects_files:
        lab.write(filename, *objs)
    r = lab.once(*extra, mode=mode)
    assert r.returncode == 0, r.stderr
    return r


def names(results) -> Counter:
    return Counter(r.get("name") or r["error"] for r in results)


def all_served(results) -> bool:
    """Every probe reached an endpoint (no refusal, no timeout)."""
    return bool(results) and all("name" in r for r in results)


def peers(results) -> set[str]:
    return {r["peer"].split(":")[0] for r in results if "peer" in r}


def web(lab, mode, pods=("e1", "e2", "e3"), extra=(), **spec):
    ports = spec.pop("ports", HTTP)
    svc = service("web", CIP, ports, **spec)
    eps = endpoint_slice("web", [endpoint(p) for p in pods], EP_HTTP)
    return programmed(lab, mode, ("web.yaml", [svc, eps]), extra=extra)


def test_cluster_ip_spreads_evenly_and_keeps_pod_source(lab, mode):
    web(lab, mode)
    results = lab.probe("pc", "tcp", CIP, 80, 300)
    counts = names(results)
    assert set(counts) == {"e1", "e2", "e3"}, counts
    # 300 draws, p=1/3: sd ~8.2; 65..135 is more than 4 sd either side
    assert all(65 <= counts[e] <= 135 for e in ("e1", "e2", "e3")), counts
    assert peers(results) == {PODS["pc"]}  # pod-to-Service inside the cluster: not masqueraded


def test_traffic_from_outside_the_cluster_is_masqueraded(lab, mode):
    web(lab, mode)
    results = lab.probe("client", "tcp", CIP, 80, 10)
    assert all_served(results), names(results)
    assert peers(results) and CLIENT_IP not in peers(results)
    assert peers(results) <= {"10.244.1.1", "10.244.2.1", "10.244.3.1"}  # the node's side of each pod link


def test_masquerade_all(lab, mode):
    web(lab, mode, extra=("--masquerade-all",))
    results = lab.probe("pc", "tcp", CIP, 80, 10)
    assert all_served(results)
    assert PODS["pc"] not in peers(results)


def test_hairpin_is_masqueraded_to_the_node(lab, mode):
    web(lab, mode, pods=("e1",))
    results = lab.probe("e1", "tcp", CIP, 80, 5)
    assert names(results) == {"e1": 5}
    assert peers(results) == {"10.244.1.1"}


def test_no_endpoints_are_rejected_not_dropped(lab, mode):
    web(lab, mode, pods=(), ports=[*HTTP, {"name": "dns", "port": 53, "protocol": "UDP"}])
    results = lab.probe("pc", "tcp", CIP, 80, 20, timeout=2)
    assert names(results) == {"refused": 20}
    results = lab.probe("client", "udp", CIP, 53, 5, timeout=2)
    assert names(results) == {"refused": 5}


def test_node_port_external_ip_and_load_balancer(lab, mode):
    web(
        lab,
        mode,
        type="LoadBalancer",
        ports=[{"name": "http", "port": 80, "nodePort": 30080}],
        externalIPs=["192.168.50.1"],
        status={"loadBalancer": {"ingress": [{"ip": "192.168.60.1"}]}},
    )
    for host, port in ((NODE_IP, 30080), ("192.168.50.1", 80), ("192.168.60.1", 80)):
        results = lab.probe("client", "tcp", host, port, 6)
        assert all_served(results), (host, results)
        assert CLIENT_IP not in peers(results)  # externalTrafficPolicy Cluster: SNATed
    # the node port answers on the node's other addresses too (default --nodeport-addresses),
    # except in nftables mode, where the default is the node's primary IPs (kube-proxy's)
    on_secondary = lab.probe("pc", "tcp", "10.244.9.1", 30080, 3, timeout=1)
    if mode == "nftables":
        assert names(on_secondary) == {"refused": 3}  # no rule: the node's own stack answers
    else:
        assert all_served(on_secondary)


def test_nodeport_addresses_restricts_the_addresses(lab, mode):
    web(lab, mode, type="NodePort", ports=[{"name": "http", "port": 80, "nodePort": 30080}],
        extra=("--nodeport-addresses", f"{NODE_IP}/32"))  # fmt: skip
    assert all_served(lab.probe("client", "tcp", NODE_IP, 30080, 3))
    assert names(lab.probe("pc", "tcp", "10.244.9.1", 30080, 3)) == {"refused": 3}  # nothing listens there


def test_localhost_node_ports(lab, mode):
    web(lab, mode, type="NodePort", ports=[{"name": "http", "port": 80, "nodePort": 30080}])
    if mode == "nftables":  # kube-proxy's nftables mode deliberately never serves node ports on loopback
        assert names(lab.probe("node", "tcp", "127.0.0.1", 30080, 1, timeout=1)) == {"refused": 1}
        assert all_served(lab.probe("node", "tcp", NODE_IP, 30080, 3))
        return
    assert all_served(lab.probe("node", "tcp", "127.0.0.1", 30080, 3))
    web(lab, mode, type="NodePort", ports=[{"name": "http", "port": 80, "nodePort": 30080}],
        extra=("--iptables-localhost-nodeports=false",))  # fmt: skip
    assert names(lab.probe("node", "tcp", "127.0.0.1", 30080, 1, timeout=1)) == {"refused": 1}  # nothing listens


def test_load_balancer_source_ranges(lab, mode):
    lb = {"loadBalancer": {"ingress": [{"ip": "192.168.60.1"}]}}
    ports = [{"name": "http", "port": 80, "nodePort": 30080}]
    web(lab, mode, type="LoadBalancer", ports=ports, status=lb, loadBalancerSourceRanges=["192.168.1.0/24"])
    assert all_served(lab.probe("client", "tcp", "192.168.60.1", 80, 3))
    web(lab, mode, type="LoadBalancer", ports=ports, status=lb, loadBalancerSourceRanges=["10.0.0.0/8"])
    assert names(lab.probe("client", "tcp", "192.168.60.1", 80, 2, timeout=1)) == {"timeout": 2}  # dropped


def test_load_balancer_source_ranges_without_endpoints(lab, mode):
    """No endpoints: an admitted source is rejected in both modes; a source the ranges do not
    admit is rejected by kube-proxy's iptables mode (its firewall exists only for a Service
    with endpoints) and dropped by its nftables mode (the firewall comes first, whatever the
    endpoints). podnet follows each mode's kube-proxy: NodePlan.firewall_without_endpoints."""
    lb = {"loadBalancer": {"ingress": [{"ip": "192.168.60.1"}]}}
    ports = [{"name": "http", "port": 80, "nodePort": 30080}]
    web(lab, mode, type="LoadBalancer", ports=ports, status=lb, loadBalancerSourceRanges=["192.168.1.0/24"], pods=())
    assert names(lab.probe("client", "tcp", "192.168.60.1", 80, 2, timeout=2)) == {"refused": 2}
    web(lab, mode, type="LoadBalancer", ports=ports, status=lb, loadBalancerSourceRanges=["10.0.0.0/8"], pods=())
    blocked = {"iptables": {"refused": 2}, "nftables": {"timeout": 2}}[mode]
    assert names(lab.probe("client", "tcp", "192.168.60.1", 80, 2, timeout=1)) == blocked


def test_external_traffic_policy_local(lab, mode):
    ports = [{"name": "http", "port": 80, "nodePort": 30080}]
    web(lab, mode, type="NodePort", ports=ports, externalTrafficPolicy="Local", healthCheckNodePort=32000,
        pods=("e1", "e3"))  # fmt: skip
    results = lab.probe("client", "tcp", NODE_IP, 30080, 20)
    assert names(results) == {"e1": 20}  # only this node's endpoint
    assert peers(results) == {CLIENT_IP}  # client source preserved
    # inside the cluster, the cluster IP still reaches every endpoint
    assert set(names(lab.probe("pc", "tcp", CIP, 80, 40))) == {"e1", "e3"}
    # no endpoint here: external traffic is dropped, not sent elsewhere
    web(lab, mode, type="NodePort", ports=ports, externalTrafficPolicy="Local", pods=("e3",))
    assert names(lab.probe("client", "tcp", NODE_IP, 30080, 2, timeout=1)) == {"timeout": 2}


def test_internal_traffic_policy_local(lab, mode):
    web(lab, mode, internalTrafficPolicy="Local")
    assert set(names(lab.probe("pc", "tcp", CIP, 80, 40))) == {"e1", "e2"}
    web(lab, mode, internalTrafficPolicy="Local", pods=("e3",))
    assert names(lab.probe("pc", "tcp", CIP, 80, 2, timeout=1)) == {"timeout": 2}  # dropped: none local


def test_session_affinity_holds(lab, mode):
    web(lab, mode, sessionAffinity="ClientIP", sessionAffinityConfig={"clientIP": {"timeoutSeconds": 60}})
    results = lab.probe("client", "tcp", CIP, 80, 50)
    assert all_served(results) and len(names(results)) == 1, names(results)


def test_terminating_endpoints_are_used_only_when_none_is_ready(lab, mode):
    svc = service("web", CIP, HTTP)
    draining = [
        endpoint("e1", ready=False, serving=True, terminating=True),
        endpoint("e2", ready=False, serving=False, terminating=True),
    ]
    programmed(lab, mode, ("web.yaml", [svc, endpoint_slice("web", draining, EP_HTTP)]))
    assert names(lab.probe("pc", "tcp", CIP, 80, 20)) == {"e1": 20}
    programmed(lab, mode, ("web.yaml", [svc, endpoint_slice("web", [*draining, endpoint("e3")], EP_HTTP)]))
    assert names(lab.probe("pc", "tcp", CIP, 80, 20)) == {"e3": 20}


def test_all_terminating_endpoints_are_served_not_rejected(lab, mode):
    """kube-proxy >= 1.28 (CategorizeEndpoints): nothing ready anywhere, so the serving and
    terminating endpoints take the traffic, for policy Cluster and Local alike. An unknown
    serving condition means serving (kube-proxy's endpointslicecache)."""
    ports = [{"name": "http", "port": 80, "nodePort": 30080}]
    draining = [endpoint("e1", ready=False, terminating=True), endpoint("e3", ready=False, terminating=True)]
    svc = service("web", CIP, ports, type="NodePort", externalTrafficPolicy="Local")
    programmed(lab, mode, ("web.yaml", [svc, endpoint_slice("web", draining, EP_HTTP)]))
    assert set(names(lab.probe("pc", "tcp", CIP, 80, 30))) == {"e1", "e3"}  # policy Cluster: both
    assert names(lab.probe("client", "tcp", NODE_IP, 30080, 10)) == {"e1": 10}  # policy Local: this node's


def test_topology_hints(lab, mode):
    svc = service("web", CIP, HTTP)

    def hinted(*zones):
        return [endpoint(p, hints={"forZones": [{"name": z}]}) for p, z in zip(("e1", "e2", "e3"), zones, strict=False)]

    eps = endpoint_slice("web", hinted("zone-a", "zone-b", "zone-b"), EP_HTTP)
    programmed(lab, mode, ("web.yaml", [svc, eps]), ("node.yaml", [node_object("zone-a")]))
    assert names(lab.probe("pc", "tcp", CIP, 80, 20)) == {"e1": 20}
    # one endpoint without a hint: hints are ignored, as kube-proxy does
    partial = endpoint_slice("web", [*hinted("zone-a", "zone-b"), endpoint("e3")], EP_HTTP)
    programmed(lab, mode, ("web.yaml", [svc, partial]))
    assert set(names(lab.probe("pc", "tcp", CIP, 80, 40))) == {"e1", "e2", "e3"}
    # node hints win over zone hints
    by_node = [endpoint("e1", hints={"forNodes": [{"name": "node-b"}]}),
               endpoint("e2", hints={"forNodes": [{"name": "node-a"}]})]  # fmt: skip
    programmed(lab, mode, ("web.yaml", [svc, endpoint_slice("web", by_node, EP_HTTP)]))
    assert names(lab.probe("pc", "tcp", CIP, 80, 20)) == {"e2": 20}


def test_many_ports_and_protocols(lab, mode):
    ports = [
        {"name": "http", "port": 80},
        {"name": "alt", "port": 81},
        {"name": "dns", "port": 53, "protocol": "UDP"},
        {"name": "sig", "port": 99, "protocol": "SCTP"},
    ]
    ep_ports = [
        {"name": "http", "port": 8080},
        {"name": "alt", "port": 8081},
        {"name": "dns", "port": 5353, "protocol": "UDP"},
        {"name": "sig", "port": 9999, "protocol": "SCTP"},
    ]
    svc = service("web", CIP, ports)
    programmed(lab, mode, ("web.yaml", [svc, endpoint_slice("web", [endpoint("e2")], ep_ports)]))
    assert names(lab.probe("pc", "tcp", CIP, 80, 3)) == {"e2": 3}
    assert names(lab.probe("pc", "tcp", CIP, 81, 3)) == {"e2": 3}
    assert names(lab.probe("pc", "udp", CIP, 53, 3)) == {"e2": 3}
    if not sctp_supported():
        pytest.skip("SCTP rules were programmed, but this kernel has no SCTP sockets to send real SCTP traffic")
    assert names(lab.probe("pc", "sctp", CIP, 99, 3)) == {"e2": 3}


def test_headless_and_external_name_services_are_ignored(lab, mode):
    headless = service("headless", "None", HTTP)
    extname = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "ext"},
               "spec": {"type": "ExternalName", "externalName": "example.com"}}  # fmt: skip
    programmed(lab, mode, ("svc.yaml", [headless, extname, endpoint_slice("headless", [endpoint("e1")], EP_HTTP)]))
    assert "PODNET-SVC-" not in lab.node.run("iptables-save").stdout
    if mode == "nftables":
        assert "10.244.1.2" not in lab.node.run("nft", "list", "table", "ip", "podnet").stdout


def test_invalid_objects_are_reported_and_skipped(lab, mode):
    good = service("web", CIP, HTTP)
    bad_port = service("bad", "10.96.0.11", [{"name": "http", "port": 70000}])
    bad_ip = service("badip", "10.96.0.300", HTTP)
    bad_proto = service("badproto", "10.96.0.12", [{"name": "x", "port": 80, "protocol": "ICMP"}])
    lab.write("broken.yaml", bad_port, bad_ip, bad_proto)
    with open(f"{lab.objects_dir}/unparsable.yaml", "w") as f:
        f.write("kind: Service\n  metadata: [\n")
    r = programmed(lab, mode, ("web.yaml", [good, endpoint_slice("web", [endpoint("e1")], EP_HTTP)]))
    assert "broken.yaml" in r.stderr and "Service default/bad" in r.stderr and "spec.ports[0].port" in r.stderr
    assert "Service default/badip" in r.stderr and "spec.clusterIP" in r.stderr
    assert "spec.ports[0].protocol" in r.stderr and "unparsable.yaml" in r.stderr
    assert names(lab.probe("pc", "tcp", CIP, 80, 3)) == {"e1": 3}


def test_leading_zero_ipv4_is_accepted(lab, mode):
    svc = service("web", "10.96.0.010", HTTP)
    programmed(lab, mode, ("web.yaml", [svc, endpoint_slice("web", [endpoint("e1")], EP_HTTP)]))
    assert names(lab.probe("pc", "tcp", "10.96.0.10", 80, 2)) == {"e1": 2}


def test_unsupported_mode_is_a_clear_error(lab):
    r = lab.once(mode="userspace")
    assert r.returncode != 0 and "--proxy-mode='userspace' is unknown" in r.stderr


def test_unknown_port_of_a_live_cluster_ip_and_unallocated_service_addresses(lab, mode):
    """kube-proxy's nftables mode rejects a port no Service has on a live cluster IP and drops
    service-CIDR addresses no Service holds; iptables mode lets both through to routing."""
    cidr = {"apiVersion": "networking.k8s.io/v1", "kind": "ServiceCIDR", "metadata": {"name": "kubernetes"},
            "spec": {"cidrs": ["10.96.0.0/16", f"{CLIENT_IP}/32"]}}  # fmt: skip
    lab.write("cidr.yaml", cidr)
    web(lab, mode, pods=("e1",))
    assert names(lab.probe("pc", "tcp", CIP, 80, 2)) == {"e1": 2}
    # the client answers a closed port with a reset: "refused" means the packet got there
    if mode != "nftables":
        assert names(lab.probe("pc", "tcp", CLIENT_IP, 9, 2, timeout=1)) == {"refused": 2}
        return
    assert names(lab.probe("pc", "tcp", CIP, 81, 2, timeout=1)) == {"refused": 2}
    assert names(lab.probe("pc", "udp", CIP, 53, 2, timeout=1)) == {"refused": 2}
    # an address of a service CIDR that no Service holds is dropped, not routed
    assert names(lab.probe("pc", "tcp", CLIENT_IP, 9, 2, timeout=1)) == {"timeout": 2}


def test_external_traffic_policy_local_without_local_endpoints_short_circuits_local_sources(lab, mode):
    lb = {"loadBalancer": {"ingress": [{"ip": "192.168.60.1"}]}}
    web(lab, mode, type="LoadBalancer", ports=[{"name": "http", "port": 80, "nodePort": 30080}],
        externalTrafficPolicy="Local", pods=("e3",), status=lb)  # fmt: skip
    assert names(lab.probe("client", "tcp", "192.168.60.1", 80, 2, timeout=1)) == {"timeout": 2}  # dropped
    # a pod and the node itself reach it as through the load balancer: every cluster endpoint
    assert names(lab.probe("pc", "tcp", "192.168.60.1", 80, 3)) == {"e3": 3}
    results = lab.probe("node", "tcp", "192.168.60.1", 80, 3)
    assert names(results) == {"e3": 3}
    assert peers(results) <= {"10.244.3.1"}  # masqueraded to the node's side of e3's link


def test_load_balancer_ip_mode_proxy_gets_no_rule(lab, mode):
    lb = {"loadBalancer": {"ingress": [{"ip": "192.168.60.1"}, {"ip": "192.168.60.2", "ipMode": "Proxy"}]}}
    web(lab, mode, type="LoadBalancer", ports=[{"name": "http", "port": 80, "nodePort": 30080}], status=lb)
    assert all_served(lab.probe("pc", "tcp", "192.168.60.1", 80, 2))
    # untouched: routed as addressed, to the upstream (the client namespace), which refuses it
    assert names(lab.probe("pc", "tcp", "192.168.60.2", 80, 2, timeout=1)) != {"e1": 2}
    text = lab.node.run("iptables-save").stdout + lab.node.run("nft", "list", "ruleset").stdout
    assert "192.168.60.2" not in text
