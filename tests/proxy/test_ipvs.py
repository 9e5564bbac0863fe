"""The IPVS mode. This machine's kernel has no IPVS and no dummy links: what needs them (virtual
servers in the kernel, traffic through them) checks for support and skips with the reason.
What can be checked without is: the desired state rendered for a set of Services, the
generic-netlink messages built for it and for a change, the companion ipset and iptables rules
(loaded into a namespace's kernel, which has ipset and iptables), clean-up, and the errors."""

from __future__ import annotations

import socket
import sys
import textwrap

import pytest
from pyroute2.netlink.generic import ipvs as genl

from proxy.ipvs import companion, netlink
from proxy.ipvs.backend import IpvsBackend
from proxy.ipvs.desired import DUMMY, IPSETS, DesiredState, InvalidScheduler, VirtualKey, check_scheduler, render
from proxy.model import NodeContext, ProxyModel
from proxy.objects import Endpoint, EndpointPort, EndpointSlice, Service, ServicePort
from proxy.trackers import Trackers
from tests.support import synthetic as S

NODE = NodeContext(name=S.NODE, node_ips=("192.168.1.1",), cluster_cidrs=("10.128.0.0/9",))


def model_of(*objects) -> ProxyModel:
    trackers = Trackers(S.NODE)
    S.feed(trackers, *objects)
    model = ProxyModel(NODE)
    model.update(trackers, trackers.drain())
    return model


def cluster():
    """Four Services: plain, NodePort with policy Local and an external IP, a load balancer
    with source ranges, one with session affinity."""
    return [
        S.service(1), S.endpoint_slice(1, 2),
        S.service(2, type="NodePort", external_traffic_local=True, external_ips=("192.168.50.2",),
                  ports=(ServicePort("http", "TCP", 80, 30002),)),
        S.endpoint_slice(2, 3, local={1}),
        S.service(3, type="LoadBalancer", load_balancer_ips=("192.168.60.3",),
                  load_balancer_source_ranges=("192.168.1.0/24",), ports=(ServicePort("dns", "UDP", 53, 30003),)),
        S.endpoint_slice(3, 1, port=5353, name="dns", protocol="UDP"),
        S.service(4, session_affinity_seconds=600), S.endpoint_slice(4, 2),
    ]  # fmt: skip


def test_desired_state_for_a_set_of_services():
    state = render(model_of(*cluster()), "lc")
    vs = state.servers
    ep = S.endpoint_ip
    assert vs[VirtualKey(S.cluster_ip(1), "TCP", 80)].reals == ((ep(1, 0), 8080), (ep(1, 1), 8080))
    assert all(v.scheduler == "lc" for v in vs.values())
    # policy Local: external addresses and the node port reach only this node's endpoint;
    # the cluster IP reaches all of them
    assert vs[VirtualKey("192.168.50.2", "TCP", 80)].reals == ((ep(2, 1), 8080),)
    assert vs[VirtualKey("192.168.1.1", "TCP", 30002)].reals == ((ep(2, 1), 8080),)
    assert len(vs[VirtualKey(S.cluster_ip(2), "TCP", 80)].reals) == 3
    # the UDP load balancer: its IP and node port
    assert VirtualKey("192.168.60.3", "UDP", 53) in vs and VirtualKey("192.168.1.1", "UDP", 30003) in vs
    # session affinity is persistence
    sticky = vs[VirtualKey(S.cluster_ip(4), "TCP", 80)]
    assert sticky.persistence == 600 and sticky.flags == 1
    assert vs[VirtualKey(S.cluster_ip(1), "TCP", 80)].persistence == 0
    # Service addresses go on the dummy; node addresses do not
    assert state.addresses == {S.cluster_ip(i) for i in (1, 2, 3, 4)} | {"192.168.50.2", "192.168.60.3"}
    assert f"{S.cluster_ip(1)},tcp:80" in state.ipsets["PODNET-CLUSTER-IP"]
    assert state.ipsets["PODNET-NODE-PORT-TCP"] == {"30002"} and state.ipsets["PODNET-NODE-PORT-LOCAL-TCP"] == {"30002"}
    assert state.ipsets["PODNET-NODE-PORT-UDP"] == {"30003"}
    # the range holds the node IP: the LB IP itself is an allowed source too (allowFromNode)
    assert state.ipsets["PODNET-LB-SOURCE-CIDR"] == {"192.168.60.3,udp:53,192.168.1.0/24",
                                                     "192.168.60.3,udp:53,192.168.60.3/32"}  # fmt: skip
    assert f"{ep(1, 0)},tcp:8080,{ep(1, 0)}" in state.ipsets["PODNET-LOOP-BACK"]


def _decoded(op: netlink.Operation) -> dict:
    """Encode the message as it would go on the wire and decode it back."""
    op.msg["header"]["type"] = 0x20  # the family id a socket would fill in
    op.msg.encode()
    back = genl.ipvsmsg(op.msg.data)
    back.decode()
    out = {"cmd": back["cmd"]}
    for name in ("IPVS_CMD_ATTR_SERVICE", "IPVS_CMD_ATTR_DEST"):
        attr = back.get_attr(name)
        if attr is not None:
            out[name] = dict(attr["attrs"])
    return out


def test_netlink_messages_built_for_a_cluster_and_for_one_change():
    objects = cluster()
    first = render(model_of(*objects), "sh")
    ops = netlink.plan(DesiredState(), first)
    assert [op.verb for op in ops].count("add-service") == len(first.servers)
    assert [op.verb for op in ops].count("add-dest") == sum(len(v.reals) for v in first.servers.values())
    add = next(op for op in ops if op.verb == "add-service" and op.key.address == S.cluster_ip(4))
    msg = _decoded(add)
    svc = msg["IPVS_CMD_ATTR_SERVICE"]
    assert msg["cmd"] == genl.IPVS_CMD_NEW_SERVICE
    assert svc["IPVS_SVC_ATTR_ADDR"] == S.cluster_ip(4) and svc["IPVS_SVC_ATTR_PORT"] == 80
    assert svc["IPVS_SVC_ATTR_PROTOCOL"] == socket.IPPROTO_TCP and svc["IPVS_SVC_ATTR_AF"] == socket.AF_INET
    assert svc["IPVS_SVC_ATTR_SCHED_NAME"] == "sh" and svc["IPVS_SVC_ATTR_TIMEOUT"] == 600
    dest = _decoded(next(op for op in ops if op.verb == "add-dest" and op.key.protocol == "UDP"))
    assert dest["cmd"] == genl.IPVS_CMD_NEW_DEST
    assert dest["IPVS_CMD_ATTR_DEST"]["IPVS_DEST_ATTR_ADDR"] == S.endpoint_ip(3, 0)
    assert dest["IPVS_CMD_ATTR_DEST"]["IPVS_DEST_ATTR_PORT"] == 5353
    assert dest["IPVS_CMD_ATTR_DEST"]["IPVS_DEST_ATTR_FWD_METHOD"] == 0  # masquerading (DNAT)
    assert dest["IPVS_CMD_ATTR_SERVICE"]["IPVS_SVC_ATTR_PROTOCOL"] == socket.IPPROTO_UDP
    # one endpoint more for Service 1, Service 4 gone: one destination added, one service removed
    objects[1] = S.endpoint_slice(1, 3)
    second = render(model_of(*objects[:6]), "sh")
    lines = [op.line() for op in netlink.plan(first, second)]
    assert lines == [
        f"add-dest tcp {S.cluster_ip(1)}:80 -> {S.endpoint_ip(1, 2)}:8080",
        f"del-service tcp {S.cluster_ip(4)}:80",
    ]
    removal = _decoded(netlink.plan(first, second)[-1])
    assert removal["cmd"] == genl.IPVS_CMD_DEL_SERVICE and removal["IPVS_CMD_ATTR_SERVICE"]["IPVS_SVC_ATTR_PORT"] == 80


def test_a_scheduler_change_is_a_set_service():
    objects = cluster()
    ops = netlink.plan(render(model_of(*objects), "rr"), render(model_of(*objects), "lc"))
    assert {op.verb for op in ops} == {"set-service"}
    assert _decoded(ops[0])["IPVS_CMD_ATTR_SERVICE"]["IPVS_SVC_ATTR_SCHED_NAME"] == "lc"


@pytest.mark.integration
def test_unknown_scheduler_is_a_clear_error(tmp_path, netns):
    with pytest.raises(InvalidScheduler, match="--ipvs-scheduler: 'wlc' is not supported"):
        check_scheduler("wlc")
    # In a namespace of its own: were the check to regress, nothing lands in the root namespace.
    ns = netns("pipvs")
    proxy = f"{sys.prefix}/bin/podnet-proxy"
    r = ns.run(
        proxy, "--proxy-mode", "ipvs", "--ipvs-scheduler", "wrr", "--once", "--objects-dir", str(tmp_path), check=False
    )
    assert r.returncode == 2 and "--ipvs-scheduler: 'wrr' is not supported (use one of rr, lc, sh)" in r.stderr


@pytest.mark.integration
def test_companion_ipsets_and_rules_load_and_clean_up(netns):
    """The companion rules and sets go into a namespace's kernel as they are (this kernel has
    ipset and iptables), and --cleanup takes exactly them out again."""
    ns = netns("pipvs")
    state = render(model_of(*cluster()), "rr")
    ns.run("ipset", "restore", input=companion.ipset_text(None, state))
    ns.run("iptables-restore", "--noflush", input=companion.rules_text(NODE))
    listed = ns.run("ipset", "list", "PODNET-LB-SOURCE-CIDR").stdout
    assert "192.168.60.3,udp:53,192.168.1.0/24" in listed
    saved = ns.run("iptables-save").stdout
    assert "-A PODNET-IPVS-SERVICES ! -s 10.128.0.0/9 -m set --match-set PODNET-CLUSTER-IP dst,dst" in saved
    # a change is a few entry updates, not a reload
    objects = cluster()
    objects[1] = S.endpoint_slice(1, 3)
    delta = companion.ipset_text(state, render(model_of(*objects), "rr"))
    assert delta.splitlines() == [f'add PODNET-LOOP-BACK {S.endpoint_ip(1, 2)},tcp:8080,{S.endpoint_ip(1, 2)} '
                                  'comment "endpoint + port + endpoint: hairpin, masqueraded" -exist']  # fmt: skip
    ns.run("ipset", "restore", input=delta)
    code = textwrap.dedent("""
        from proxy.ipvs.backend import IpvsBackend
        from proxy.model import NodeContext
        print("\\n".join(IpvsBackend(NodeContext(name="n")).cleanup()))
    """)
    removed = ns.run(sys.executable, "-c", code).stdout.splitlines()
    assert set(removed) >= {f"ipset destroy {name}" for name in IPSETS}
    assert ns.run("ipset", "list", "-n").stdout.split() == []
    assert "PODNET" not in ns.run("iptables-save").stdout


def _support(ns) -> str:
    code = "from proxy.ipvs.backend import kernel_support; print(kernel_support() or '')"
    return ns.run(sys.executable, "-c", code).stdout.strip()


@pytest.mark.integration
def test_ipvs_mode_refuses_cleanly_without_kernel_support(netns, tmp_path):
    ns = netns("pipvs")
    reason = _support(ns)
    if not reason:
        pytest.skip("this kernel has IPVS and dummy links: the refusal path does not apply")
    (tmp_path / "web.yaml").write_text(
        "apiVersion: v1\nkind: Service\nmetadata: {name: web, namespace: default}\n"
        "spec: {clusterIP: 10.96.0.10, ports: [{name: http, port: 80}]}\n"
    )
    r = ns.run(f"{sys.prefix}/bin/podnet-proxy", "--proxy-mode", "ipvs", "--once", "--objects-dir", str(tmp_path),
               "--hostname-override", "n", "--node-ip", "192.168.1.1", check=False)  # fmt: skip
    assert r.returncode == 1 and "--proxy-mode=ipvs cannot run here: this kernel has no" in r.stderr
    assert DUMMY not in ns.run("ip", "link").stdout  # nothing half-programmed
    assert ns.run("ipset", "list", "-n").stdout.split() == []


@pytest.mark.integration
def test_ipvs_virtual_servers_in_the_kernel(netns):
    ns = netns("pipvs")
    reason = _support(ns)
    if reason:
        pytest.skip(f"needs IPVS and dummy links, and {reason}")
    code = textwrap.dedent("""
        import json
        from proxy.ipvs.backend import IpvsBackend
        from tests.proxy.test_ipvs import NODE, cluster, model_of
        b = IpvsBackend(NODE, "rr")
        tx = b.render(model_of(*cluster()), set(), True)
        b.apply(tx)
        from pyroute2 import IPVS
        print(json.dumps(len(list(IPVS().service("dump")))))
        b.cleanup()
    """)
    count = int(ns.run(sys.executable, "-c", code).stdout.strip())
    assert count == len(render(model_of(*cluster()), "rr").servers)
    assert IpvsBackend  # the backend under test


def test_policy_local_without_a_local_endpoint_serves_the_cluster_endpoints():
    """IPVS cannot tell local sources from outside ones, so the plan's short-circuit (pods and
    the node reach a policy-Local external destination through the cluster endpoints) becomes:
    no endpoint here, every endpoint serves the external addresses, for every source
    (kube-proxy's IPVS syncEndpoint, kubernetes/kubernetes#97081). With a local endpoint,
    only it serves them."""
    remote_only = [
        S.service(5, type="LoadBalancer", external_traffic_local=True, external_ips=("192.168.50.5",),
                  load_balancer_ips=("192.168.60.5",), ports=(ServicePort("http", "TCP", 80, 30005),)),
        S.endpoint_slice(5, 2),
    ]  # fmt: skip
    vs = render(model_of(*cluster(), *remote_only), "rr").servers
    everyone = ((S.endpoint_ip(5, 0), 8080), (S.endpoint_ip(5, 1), 8080))
    for addr, port in (("192.168.50.5", 80), ("192.168.60.5", 80), ("192.168.1.1", 30005)):
        assert vs[VirtualKey(addr, "TCP", port)].reals == everyone, addr
    # Service 2 has a local endpoint: its external addresses keep to it
    assert vs[VirtualKey("192.168.50.2", "TCP", 80)].reals == ((S.endpoint_ip(2, 1), 8080),)
    # the node's own connections to policy-Local external destinations are masqueraded
    rules = companion.rules_text(NODE)
    assert ("-A PODNET-IPVS-SERVICES -m set --match-set PODNET-EXTERNAL-LOCAL dst,dst "
            "-m addrtype --src-type LOCAL -j PODNET-IPVS-MARK-MASQ") in rules  # fmt: skip
    local_np = "-A PODNET-IPVS-NODE-PORT -p tcp -m set --match-set PODNET-NODE-PORT-LOCAL-TCP dst"
    assert rules.index(f"{local_np} -m addrtype --src-type LOCAL -j PODNET-IPVS-MARK-MASQ") < rules.index(
        f"{local_np} -j RETURN"
    )


NODE6 = NodeContext(name=S.NODE, node_ips=("fd00::1",), cluster_cidrs=("fd10::/64",), family=6)


def ipv6_cluster():
    """A dual-stack LoadBalancer as the IPv6 proxier sees it: policy Local, one endpoint here."""
    svc = Service("bench", "v6", type="LoadBalancer", cluster_ips=("10.96.0.6", "fd30::6"),
                  ports=(ServicePort("http", "TCP", 80, 30006),), load_balancer_ips=("fd60::6",),
                  load_balancer_source_ranges=("fd00::/64",), external_traffic_local=True)  # fmt: skip
    eps = tuple(Endpoint(addresses=(f"fd80::{j}",), node_name=S.NODE if j == 1 else "node-b") for j in (1, 2))
    return [svc, EndpointSlice("bench", "v6-x", "v6", "IPv6", eps, (EndpointPort("http", "TCP", 8080),))]


def model6(*objects) -> ProxyModel:
    trackers = Trackers(S.NODE)
    S.feed(trackers, *objects)
    model = ProxyModel(NODE6)
    model.update(trackers, trackers.drain())
    return model


def test_ipv6_desired_state_sets_and_rules():
    state = render(model6(*ipv6_cluster()), "rr")
    vs = state.servers
    assert vs[VirtualKey("fd30::6", "TCP", 80)].reals == (("fd80::1", 8080), ("fd80::2", 8080))
    assert vs[VirtualKey("fd60::6", "TCP", 80)].reals == (("fd80::1", 8080),)  # policy Local
    assert vs[VirtualKey("fd00::1", "TCP", 30006)].reals == (("fd80::1", 8080),)
    assert state.addresses == {"fd30::6", "fd60::6"} and state.family == 6
    # the IPv6 proxier's sets are its own (beside the IPv4 proxier's), of family inet6
    text = companion.ipset_text(None, state)
    assert "create PODNET-6-CLUSTER-IP hash:ip,port family inet6 comment -exist" in text
    assert "create PODNET-6-NODE-PORT-TCP bitmap:port range 0-65535 comment -exist" in text
    assert "add PODNET-6-LB-SOURCE-CIDR fd60::6,tcp:80,fd00::/64 " in text
    assert "add PODNET-6-LB-SOURCE-CIDR fd60::6,tcp:80,fd60::6/128 " in text  # allowFromNode
    assert " PODNET-CLUSTER-IP " not in text
    rules = companion.rules_text(NODE6)
    assert "-A PODNET-IPVS-SERVICES -m set --match-set PODNET-6-CLUSTER-IP dst,dst ! -s fd10::/64" in rules
    assert "PODNET-6-LOAD-BALANCER-FW" in rules and "--match-set PODNET-CLUSTER-IP " not in rules
    # Service addresses go on the dummy as /128 hosts, virtual servers as AF_INET6
    tx = IpvsBackend(NODE6).render(model6(*ipv6_cluster()), set(), True)
    assert "ip addr add fd30::6/128 dev podnet-ipvs0" in tx.text()
    add = next(op for op in tx.ops if op.verb == "add-service" and op.key.address == "fd30::6")
    assert _decoded(add)["IPVS_CMD_ATTR_SERVICE"]["IPVS_SVC_ATTR_AF"] == socket.AF_INET6


@pytest.mark.integration
def test_ipv6_companion_sets_and_rules_load_beside_ipv4_and_clean_up(netns):
    """Both families' companions go into one namespace's kernel (ipset, iptables, ip6tables),
    side by side, and --cleanup takes both out."""
    ns = netns("pipvs6")
    v4, v6 = render(model_of(*cluster()), "rr"), render(model6(*ipv6_cluster()), "rr")
    ns.run("ipset", "restore", input=companion.ipset_text(None, v4))
    ns.run("ipset", "restore", input=companion.ipset_text(None, v6))
    ns.run("iptables-restore", "--noflush", input=companion.rules_text(NODE))
    ns.run("ip6tables-restore", "--noflush", input=companion.rules_text(NODE6))
    assert "fd60::6,tcp:80,fd00::/64" in ns.run("ipset", "list", "PODNET-6-LB-SOURCE-CIDR").stdout
    assert "Type: hash:ip,port\n" in ns.run("ipset", "list", "PODNET-6-CLUSTER-IP").stdout
    assert "family inet6" in ns.run("ipset", "list", "PODNET-6-CLUSTER-IP").stdout
    saved6 = ns.run("ip6tables-save").stdout
    assert "-A PODNET-IPVS-SERVICES ! -s fd10::/64 -m set --match-set PODNET-6-CLUSTER-IP dst,dst" in saved6
    code = textwrap.dedent("""
        from proxy.ipvs.backend import IpvsBackend
        from proxy.model import NodeContext
        print("\\n".join(IpvsBackend(NodeContext(name="n", family=6)).cleanup()))
    """)
    removed = ns.run(sys.executable, "-c", code).stdout.splitlines()
    assert {"ipset destroy PODNET-6-CLUSTER-IP", "ipset destroy PODNET-CLUSTER-IP"} <= set(removed)
    assert ns.run("ipset", "list", "-n").stdout.split() == []
    assert "PODNET" not in ns.run("iptables-save").stdout + ns.run("ip6tables-save").stdout
