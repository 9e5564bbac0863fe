"""Every bad input gets the spec's error JSON with its code, a message naming the field, a
non-zero exit, and no change to the kernel or the IPAM store."""

from __future__ import annotations

import json

import pytest

from tests.cni.conftest import allocations, kernel_state, podnet_conf

pytestmark = pytest.mark.integration


def _bad_subnet(conf):
    conf["ipam"]["ranges"] = [[{"subnet": "10.88.0.0/33"}]]


def _no_ipam(conf):
    del conf["ipam"]


def _bad_mtu(conf):
    conf["mtu"] = 20


def _unknown_ipam(conf):
    conf["ipam"]["type"] = "no-such-ipam"


def _range_start_outside(conf):
    conf["ipam"]["ranges"] = [[{"subnet": "10.88.0.0/24", "rangeStart": "10.89.0.1"}]]


def _bad_dns(conf):
    conf["dns"] = {"nameservers": "10.96.0.10"}


CONFIG_CASES = [
    # (id, mutate config, expected code, words the message must hold)
    ("bad-subnet", _bad_subnet, 7, ["subnet", "10.88.0.0/33"]),
    ("no-ipam", _no_ipam, 7, ["ipam.type"]),
    ("bad-mtu", _bad_mtu, 7, ["mtu"]),
    ("unknown-ipam-plugin", _unknown_ipam, 7, ["no-such-ipam", "CNI_PATH"]),
    ("range-start-outside", _range_start_outside, 7, ["rangeStart", "outside"]),
    ("bad-dns", _bad_dns, 7, ["dns.nameservers"]),
]


@pytest.mark.parametrize("case", CONFIG_CASES, ids=[c[0] for c in CONFIG_CASES])
def test_bad_config_is_refused_and_changes_nothing(case, netns, node, runtime, tmp_path):
    _, mutate, code, words = case
    conf = podnet_conf(tmp_path, "1.1.0")
    mutate(conf)
    pod = netns("pnt-pod")
    before = kernel_state(node), pod.links()
    status, err = runtime.plugin("podnet-cni", "ADD", conf, netns=pod.path, container_id="bad")
    assert status != 0
    assert err["code"] == code and err["cniVersion"] == "1.1.0"
    for word in words:
        assert word in err["msg"] + err.get("details", "")
    assert (kernel_state(node), pod.links()) == before
    assert allocations(tmp_path) == []


@pytest.mark.parametrize(
    "stdin,code,word",
    [
        (b"{not json", 6, "malformed JSON"),
        (b"[1, 2]", 6, "JSON object"),
        (json.dumps({"cniVersion": "9.9.9", "name": "x", "type": "podnet-cni"}).encode(), 1, "9.9.9"),
        (json.dumps({"cniVersion": "1.0.0", "name": "bad name!", "type": "podnet-cni"}).encode(), 7, "name"),
    ],
    ids=["malformed-json", "not-an-object", "unknown-version", "bad-network-name"],
)
def test_undecodable_or_unsupported_stdin(stdin, code, word, netns, node, runtime, tmp_path):
    pod = netns("pnt-pod")
    before = kernel_state(node)
    status, err = runtime.plugin("podnet-cni", "ADD", stdin, netns=pod.path, container_id="bad")
    assert status != 0 and err["code"] == code and word in err["msg"]
    assert kernel_state(node) == before


@pytest.mark.parametrize("variable", ["CNI_COMMAND", "CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME"])
def test_missing_environment_variable(variable, netns, node, runtime, tmp_path):
    pod = netns("pnt-pod")
    before = kernel_state(node)
    status, err = runtime.plugin(
        "podnet-cni", "ADD", podnet_conf(tmp_path), netns=pod.path, container_id="c", unset=(variable,)
    )
    assert status != 0 and err["code"] == 4 and variable in err["msg"]
    assert kernel_state(node) == before and allocations(tmp_path) == []


@pytest.mark.parametrize(
    "env,word",
    [
        ({"CNI_COMMAND": "FROB"}, "CNI_COMMAND"),
        ({"CNI_IFNAME": "much-too-long-name"}, "CNI_IFNAME"),
        ({"CNI_CONTAINERID": "bad/id"}, "CNI_CONTAINERID"),
        ({"CNI_ARGS": "novalue"}, "CNI_ARGS"),
    ],
    ids=["unknown-verb", "long-ifname", "bad-container-id", "bad-cni-args"],
)
def test_invalid_environment_variable(env, word, netns, node, runtime, tmp_path):
    env = dict(env)  # the parameter is shared by every run of this test (one per launcher)
    pod = netns("pnt-pod")
    verb = env.pop("CNI_COMMAND", "ADD")
    kwargs = {"netns": pod.path, "container_id": env.pop("CNI_CONTAINERID", "c")}
    if "CNI_IFNAME" in env:
        kwargs["ifname"] = env.pop("CNI_IFNAME")
    status, err = runtime.plugin("podnet-cni", verb, podnet_conf(tmp_path), **kwargs, **env)
    assert status != 0 and err["code"] == 4 and word in err["msg"]
    assert allocations(tmp_path) == []


def test_netns_that_does_not_exist(node, runtime, tmp_path):
    before = kernel_state(node)
    status, err = runtime.plugin(
        "podnet-cni", "ADD", podnet_conf(tmp_path), netns="/var/run/netns/pnt-absent", container_id="c"
    )
    assert status != 0 and err["code"] == 3 and "/var/run/netns/pnt-absent" in err["msg"]
    assert kernel_state(node) == before and allocations(tmp_path) == []


def test_range_full_is_try_again_later(netns, node, runtime, tmp_path):
    conf = podnet_conf(tmp_path, ranges=[[{"subnet": "10.88.0.0/30"}]])  # one usable address
    pods = [netns("pnt-pod") for _ in range(2)]
    assert runtime.plugin("podnet-cni", "ADD", conf, netns=pods[0].path, container_id="first")[0] == 0
    before = kernel_state(node)
    status, err = runtime.plugin("podnet-cni", "ADD", conf, netns=pods[1].path, container_id="second")
    assert status != 0 and err["code"] == 11 and "no free address" in err["msg"]
    assert kernel_state(node) == before and allocations(tmp_path) == ["10.88.0.2"]


def test_version_and_check_on_old_versions(node, runtime, tmp_path):
    status, out = runtime.plugin("podnet-cni", "VERSION", b"")
    assert status == 0 and out["supportedVersions"] == ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"]
    status, err = runtime.plugin(
        "podnet-cni", "CHECK", podnet_conf(tmp_path, "0.3.1", prevResult={}), netns="/var/run/netns/x", container_id="c"
    )
    assert status != 0 and err["code"] == 1 and "CHECK" in err["msg"]


@pytest.mark.parametrize("case", CONFIG_CASES[:2], ids=[c[0] for c in CONFIG_CASES[:2]])
def test_errors_come_back_the_same_through_the_server(case, plugin_mode, netns, node, runtime, tmp_path):
    _, mutate, code, words = case
    conf = podnet_conf(tmp_path, "1.1.0")
    mutate(conf)
    pod = netns("pnt-pod")
    status, err = runtime.plugin("podnet-cni", "ADD", conf, netns=pod.path, container_id="bad")
    assert status != 0 and err["code"] == code and all(w in err["msg"] for w in words)
