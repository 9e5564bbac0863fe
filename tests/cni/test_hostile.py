"""Hostile CNI input, executed for real in namespaces (issue 13): each call is refused with a
typed error naming the field, and nothing changes: links, addresses and routes of node and
pod, IPAM records, and no process of the plugin outlives it."""

from __future__ import annotations

import os
import subprocess

import pytest

from tests.cni.conftest import allocations, kernel_state, podnet_conf

pytestmark = pytest.mark.integration


def node_pids(node) -> list[str]:
    return subprocess.run(["ip", "netns", "pids", node.name], capture_output=True, text=True).stdout.split()


def refused(runtime, node, pod, tmp_path, conf, code, field, **kw) -> dict:
    before = kernel_state(node), pod.links(), pod.routes(), allocations(tmp_path), node_pids(node)
    status, err = runtime.plugin("podnet-cni", "ADD", conf, netns=kw.pop("netns", pod.path), **kw)
    assert status != 0 and err is not None, err
    assert err["code"] == code and field in err["msg"], err
    assert (kernel_state(node), pod.links(), pod.routes(), allocations(tmp_path), node_pids(node)) == before
    return err


def test_a_repeated_add_is_refused_and_keeps_the_first_attachment(netns, node, runtime, tmp_path):
    conf = podnet_conf(tmp_path)
    pod = netns("pnt-pod")
    status, first = runtime.plugin("podnet-cni", "ADD", conf, netns=pod.path, container_id="c1")
    assert status == 0, first
    refused(runtime, node, pod, tmp_path, conf, 7, "CNI_IFNAME", container_id="c1")
    assert allocations(tmp_path) == ["10.88.0.2"]  # the first one's record survives
    assert "10.88.0.2" in pod.ip("addr", "show", "eth0")
    status, _ = runtime.plugin("podnet-cni", "DEL", conf, netns=pod.path, container_id="c1")
    assert status == 0 and allocations(tmp_path) == []


@pytest.mark.parametrize(
    ("env", "field"),
    [
        ({"ifname": "eth%d"}, "CNI_IFNAME"),
        ({"container_id": "a" * 300}, "CNI_CONTAINERID"),
        ({"container_id": "abc\n"}, "CNI_CONTAINERID"),
        ({"ifname": "eth0\n"}, "CNI_IFNAME"),
    ],
    ids=["template-ifname", "300-char-id", "id-newline", "ifname-newline"],
)
def test_names_the_kernel_would_mangle_are_refused_before_it_is_touched(env, field, netns, node, runtime, tmp_path):
    pod = netns("pnt-pod")
    refused(runtime, node, pod, tmp_path, podnet_conf(tmp_path), 4, field, **{"container_id": "c1", **env})


def test_the_longest_name_and_id_allowed_fit_the_host_links_alias(netns, node, runtime, tmp_path):
    pod = netns("pnt-pod")
    conf = podnet_conf(tmp_path)
    conf["name"] = "n" * 64
    status, out = runtime.plugin("podnet-cni", "ADD", conf, netns=pod.path, container_id="c" * 160)
    assert status == 0, out
    status, out = runtime.plugin("podnet-cni", "DEL", conf, netns=pod.path, container_id="c" * 160)
    assert status == 0 and allocations(tmp_path, "n" * 64) == [], out
    refused(runtime, node, pod, tmp_path, conf, 4, "CNI_CONTAINERID", container_id="c" * 161)


def test_the_nodes_own_namespace_is_refused(netns, node, runtime, tmp_path):
    pod = netns("pnt-pod")
    conf = podnet_conf(tmp_path)
    # the plugin runs inside the node namespace: its path is the plugin's own namespace
    refused(runtime, node, pod, tmp_path, conf, 4, "CNI_NETNS", netns=node.path, container_id="c1")
    refused(runtime, node, pod, tmp_path, conf, 4, "CNI_NETNS", netns="/proc/self/ns/net", container_id="c1")


def test_a_fifo_as_netns_never_blocks(netns, node, runtime, tmp_path):
    pod = netns("pnt-pod")
    fifo = str(tmp_path / "fifo")
    os.mkfifo(fifo)
    refused(runtime, node, pod, tmp_path, podnet_conf(tmp_path), 3, "CNI_NETNS", netns=fifo, container_id="c1")


def _ipam(**fields):
    def mutate(conf):
        conf["ipam"].update(fields)

    return mutate


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (_ipam(type="podnet-cni"), "ipam.type"),
        (_ipam(type="."), "ipam.type"),
        (_ipam(type=".."), "ipam.type"),
        (_ipam(dataDir="/tmp/\ud800"), "ipam.dataDir"),
        (_ipam(dataDir="/tmp/" + "d" * 300), "ipam.dataDir"),
        (_ipam(ranges=[[{"subnet": "169.254.1.0/24"}]]), "subnet"),
        (_ipam(ranges=[[{"subnet": "0.0.0.0/0"}]]), "subnet"),
        (_ipam(ranges=[[{"subnet": "::ffff:10.0.0.0/120"}]]), "subnet"),
        (_ipam(routes=[{"dst": "10.99.0.0/16", "gw": "10.77.0.1"}]), "ipam.routes"),
    ],
    ids=[
        "self-delegation",
        "dot-type",
        "dotdot-type",
        "surrogate-datadir",
        "long-datadir",
        "gateway-range",
        "default-range",
        "v4-mapped-range",
        "unreachable-gateway",
    ],  # fmt: skip
)
def test_bad_config_is_a_typed_error_and_changes_nothing(mutate, field, netns, node, runtime, tmp_path):
    pod = netns("pnt-pod")
    conf = podnet_conf(tmp_path)
    mutate(conf)
    err = refused(runtime, node, pod, tmp_path, conf, 7, field, container_id="c1")
    assert "internal error" not in err["msg"]
