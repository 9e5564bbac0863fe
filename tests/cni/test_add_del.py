"""podnet-cni + podnet-ipam through libcni (cni-driver), in real namespaces."""

from __future__ import annotations

import pytest

from tests.cni.conftest import NODE_IP, allocations, as_list, podnet_conf

pytestmark = pytest.mark.integration

LIBCNI_VERSIONS = ["0.3.1", "0.4.0", "1.0.0"]  # libcni 1.1.2 speaks up to 1.0.0


@pytest.mark.parametrize("version", LIBCNI_VERSIONS)
def test_two_pods_ping_each_other_and_the_node(version, plugin_mode, netns, node, runtime, tmp_path):
    conf = as_list(podnet_conf(tmp_path, version))
    before = node.links()
    pods = [netns("pnt-pod") for _ in range(2)]
    results = [runtime.add(conf, pod, f"ctr-{i}") for i, pod in enumerate(pods)]
    ips = [r["ips"][0]["address"].split("/")[0] for r in results]
    assert len(set(ips)) == 2
    if version == "1.0.0":
        assert "version" not in results[0]["ips"][0]
    else:
        assert results[0]["ips"][0]["version"] == "4"
    assert pods[0].run("ping", "-c1", "-W2", ips[1]).returncode == 0
    assert pods[1].run("ping", "-c1", "-W2", ips[0]).returncode == 0
    assert pods[0].run("ping", "-c1", "-W2", NODE_IP).returncode == 0
    if version != "0.3.1":  # CHECK exists since 0.4.0
        check = runtime.check(conf, pods[0], "ctr-0")
        assert check.returncode == 0, check.stderr
    for i, pod in enumerate(pods):
        runtime.delete(conf, pod, f"ctr-{i}")
    assert node.links() == before
    assert "10.88.0." not in node.routes()
    assert allocations(tmp_path) == []


def test_spec_110_add_check_del_by_direct_execution(netns, node, runtime, tmp_path):
    """libcni here stops at 1.0.0, so 1.1.0 is driven by executing the plugin as the spec says."""
    conf = podnet_conf(tmp_path, "1.1.0", dns={"nameservers": ["10.96.0.10"], "search": ["svc.cluster.local"]})
    pod = netns("pnt-pod")
    args = {"netns": pod.path, "container_id": "ctr-110"}
    code, result = runtime.plugin("podnet-cni", "ADD", conf, **args)
    assert code == 0, result
    assert result["cniVersion"] == "1.1.0"
    host_if, pod_if = result["interfaces"]
    assert host_if["name"].startswith("pn") and len(host_if["name"]) <= 15
    assert pod_if == {"name": "eth0", "mac": pod_if["mac"], "sandbox": pod.path, "mtu": pod_if["mtu"]}
    assert result["ips"][0]["interface"] == 1 and result["ips"][0]["address"].endswith("/32")
    assert result["routes"] == [{"dst": "0.0.0.0/0", "gw": "169.254.1.1"}]
    assert result["dns"] == {"nameservers": ["10.96.0.10"], "search": ["svc.cluster.local"]}
    link = pod.ip("-o", "link", "show", "eth0")
    assert pod_if["mac"] in link and f"mtu {pod_if['mtu']}" in link
    code, out = runtime.plugin("podnet-cni", "CHECK", dict(conf, prevResult=result), **args)
    assert (code, out) == (0, None)
    assert runtime.plugin("podnet-cni", "DEL", conf, **args) == (0, None)
    assert allocations(tmp_path) == []


def test_mtu_defaults_to_the_uplink_and_follows_the_netconf(netns, node, runtime, tmp_path):
    uplink_peer = netns("pnt-peer")
    node.ip("link", "add", "uplink0", "mtu", "1400", "type", "veth", "peer", "name", "p0", "netns", uplink_peer.name)
    node.ip("addr", "add", "198.51.100.2/24", "dev", "uplink0")
    node.ip("link", "set", "uplink0", "up")
    node.ip("route", "add", "default", "via", "198.51.100.1", "dev", "uplink0", "onlink")
    pods = [netns("pnt-pod") for _ in range(2)]
    code, result = runtime.plugin(
        "podnet-cni", "ADD", podnet_conf(tmp_path, "1.1.0"), netns=pods[0].path, container_id="a"
    )
    assert code == 0, result
    assert "mtu 1400" in pods[0].ip("-o", "link", "show", "eth0")
    code, result = runtime.plugin(
        "podnet-cni", "ADD", podnet_conf(tmp_path, "1.1.0", mtu=1280), netns=pods[1].path, container_id="b"
    )
    assert code == 0, result
    assert "mtu 1280" in pods[1].ip("-o", "link", "show", "eth0")


def test_dual_stack_pods_reach_each_other_over_ipv4_and_ipv6(netns, node, runtime, tmp_path):
    node.ip("addr", "add", "2001:db8:ffff::10/128", "dev", "lo")
    ranges = [[{"subnet": "10.88.0.0/24"}], [{"subnet": "fd00:88::/64"}]]
    conf = as_list(podnet_conf(tmp_path, ranges=ranges))
    pods = [netns("pnt-pod") for _ in range(2)]
    results = [runtime.add(conf, pod, f"ds-{i}") for i, pod in enumerate(pods)]
    v4 = [r["ips"][0]["address"].split("/")[0] for r in results]
    v6 = [r["ips"][1]["address"].split("/")[0] for r in results]
    assert all(a.startswith("10.88.0.") for a in v4) and all(a.startswith("fd00:88::") for a in v6)
    # the host ends skip DAD: no link-local address left tentative, which would hold back the
    # neighbour solicitation for the first IPv6 packets forwarded into the pod
    for r in results:
        host_if = r["interfaces"][0]["name"]
        assert node.ip("-6", "addr", "show", "dev", host_if, "scope", "link").strip(), host_if
        assert not node.ip("-6", "addr", "show", "dev", host_if, "tentative").strip(), host_if
    assert pods[0].run("ping", "-c1", "-W2", v4[1]).returncode == 0
    ping6 = pods[0].run("ping", "-6", "-c1", "-W3", v6[1], check=False)
    assert ping6.returncode == 0, ping6.stdout + ping6.stderr
    for i, pod in enumerate(pods):
        runtime.delete(conf, pod, f"ds-{i}")
    assert allocations(tmp_path) == []


def test_ipam_routes_go_to_the_pod_and_into_the_result(netns, node, runtime, tmp_path):
    conf = podnet_conf(tmp_path, "1.1.0")
    conf["ipam"]["routes"] = [{"dst": "0.0.0.0/0"}, {"dst": "203.0.113.0/24"}]
    pod = netns("pnt-pod")
    code, result = runtime.plugin("podnet-cni", "ADD", conf, netns=pod.path, container_id="r")
    assert code == 0, result
    assert {"dst": "203.0.113.0/24", "gw": "169.254.1.1"} in result["routes"]
    assert "203.0.113.0/24 via 169.254.1.1 dev eth0" in pod.ip("route")
    assert runtime.plugin("podnet-cni", "CHECK", dict(conf, prevResult=result), netns=pod.path, container_id="r") == (
        0,
        None,
    )
