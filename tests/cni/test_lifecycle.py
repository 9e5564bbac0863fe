"""DEL when things are gone, CHECK that notices, GC, STATUS, undo on failure, and crashes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time

import pytest

from cni.plugin import STOP_AT
from netns import popen as popen_inside
from tests.cni.conftest import allocations, as_list, kernel_state, podnet_conf

pytestmark = pytest.mark.integration


def test_del_succeeds_twice_without_netns_and_after_the_netns_is_gone(plugin_mode, netns, node, runtime, tmp_path):
    conf = podnet_conf(tmp_path)
    before = kernel_state(node)
    pod = netns("pnt-pod")
    code, result = runtime.plugin("podnet-cni", "ADD", conf, netns=pod.path, container_id="gone")
    assert code == 0, result
    subprocess.run(["ip", "netns", "del", pod.name], check=True)
    assert runtime.plugin("podnet-cni", "DEL", conf, netns=pod.path, container_id="gone") == (0, None)
    assert runtime.plugin("podnet-cni", "DEL", conf, netns=pod.path, container_id="gone") == (0, None)
    assert runtime.plugin("podnet-cni", "DEL", conf, netns="", container_id="gone") == (0, None)
    assert runtime.plugin("podnet-cni", "DEL", conf, container_id="never-added", unset=("CNI_NETNS",)) == (0, None)
    assert allocations(tmp_path) == []
    assert kernel_state(node) == before


def test_del_with_empty_netns_removes_the_veth_and_releases(netns, node, runtime, tmp_path):
    conf = podnet_conf(tmp_path)
    before = kernel_state(node)
    pod = netns("pnt-pod")
    code, _ = runtime.plugin("podnet-cni", "ADD", conf, netns=pod.path, container_id="c1")
    assert code == 0
    assert runtime.plugin("podnet-cni", "DEL", conf, netns="", container_id="c1") == (0, None)
    assert kernel_state(node) == before and allocations(tmp_path) == []
    assert "eth0" not in pod.links()


@pytest.mark.parametrize("breakage", ["pod-route", "pod-address", "host-route", "pod-link-down"])
def test_check_names_what_differs(breakage, netns, node, runtime, tmp_path):
    conf = podnet_conf(tmp_path, "1.1.0")
    pod = netns("pnt-pod")
    args = {"netns": pod.path, "container_id": "chk"}
    code, result = runtime.plugin("podnet-cni", "ADD", conf, **args)
    assert code == 0
    ip = result["ips"][0]["address"]
    host_if = result["interfaces"][0]["name"]
    if breakage == "pod-route":
        pod.ip("route", "del", "default")
    elif breakage == "pod-address":
        pod.ip("addr", "del", ip, "dev", "eth0")
    elif breakage == "host-route":
        node.ip("route", "del", ip, "dev", host_if)
    else:
        pod.ip("link", "set", "eth0", "down")
    code, err = runtime.plugin("podnet-cni", "CHECK", dict(conf, prevResult=result), **args)
    assert code != 0 and err["code"] == 100
    expected = {"pod-route": "0.0.0.0/0", "pod-address": ip, "host-route": "host route", "pod-link-down": "down"}
    assert expected[breakage] in err["msg"]


def test_gc_releases_what_the_runtime_no_longer_holds(plugin_mode, netns, node, runtime, tmp_path):
    conf = podnet_conf(tmp_path, "1.1.0")
    pods = [netns("pnt-pod") for _ in range(3)]
    for i, pod in enumerate(pods):
        assert runtime.plugin("podnet-cni", "ADD", conf, netns=pod.path, container_id=f"gc-{i}")[0] == 0
    assert len(allocations(tmp_path)) == 3
    gc_conf = dict(conf, **{"cni.dev/valid-attachments": [{"containerID": "gc-1", "ifname": "eth0"}]})
    assert runtime.plugin("podnet-cni", "GC", gc_conf) == (0, None)
    assert len(allocations(tmp_path)) == 1
    assert "eth0" in pods[1].links()
    assert "eth0" not in pods[0].links() and "eth0" not in pods[2].links()
    assert pods[1].run("ping", "-c1", "-W2", "192.0.2.10").returncode == 0


def test_status_reports_whether_adds_can_be_served(node, runtime, tmp_path):
    conf = podnet_conf(tmp_path, "1.1.0")
    assert runtime.plugin("podnet-cni", "STATUS", conf) == (0, None)
    (tmp_path / "plain-file").write_text("not a directory")
    conf["ipam"]["dataDir"] = str(tmp_path / "plain-file" / "ipam")
    code, err = runtime.plugin("podnet-cni", "STATUS", conf)
    assert code != 0 and err["code"] == 50 and "dataDir" in err["msg"]


def test_failure_half_way_through_add_undoes_every_step(netns, node, runtime, tmp_path):
    # An IPAM route whose gateway the pod cannot reach fails after the veth and addresses exist.
    conf = podnet_conf(tmp_path, "1.1.0")
    conf["ipam"]["routes"] = [{"dst": "203.0.113.0/24", "gw": "10.77.0.1"}]
    before = kernel_state(node)
    pod = netns("pnt-pod")
    code, err = runtime.plugin("podnet-cni", "ADD", conf, netns=pod.path, container_id="half")
    assert code != 0, err
    assert kernel_state(node) == before
    assert pod.links() == ["lo"]
    assert allocations(tmp_path) == []


@pytest.mark.parametrize("step", ["ipam", "veth", "pod", "host"])
@pytest.mark.parametrize("cleanup", ["DEL", "GC"])
def test_sigkill_in_the_middle_of_add_then_del_or_gc_leaks_nothing(step, cleanup, netns, node, runtime, tmp_path):
    conf = podnet_conf(tmp_path, "1.1.0", ranges=[[{"subnet": "10.88.0.0/30"}]])  # exactly one address
    before = kernel_state(node)
    pod = netns("pnt-pod")
    env = runtime._env(
        CNI_COMMAND="ADD", CNI_CONTAINERID="killed", CNI_NETNS=pod.path, CNI_IFNAME="eth0", **{STOP_AT: step}
    )
    proc = popen_inside(
        node.name,
        [os.path.join(runtime.cni_path.split(":")[0], "podnet-cni")],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        env=env,
    )
    proc.stdin.write(json.dumps(conf).encode())
    proc.stdin.close()
    _wait_stopped(proc.pid)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert allocations(tmp_path) == ["10.88.0.2"]  # the crash left its allocation behind
    if cleanup == "DEL":
        assert runtime.plugin("podnet-cni", "DEL", conf, netns=pod.path, container_id="killed") == (0, None)
    else:
        assert runtime.plugin("podnet-cni", "GC", dict(conf, **{"cni.dev/valid-attachments": []})) == (0, None)
    assert allocations(tmp_path) == []
    assert kernel_state(node) == before
    # The one address can be had again.
    code, result = runtime.plugin("podnet-cni", "ADD", conf, netns=pod.path, container_id="next")
    assert code == 0 and result["ips"][0]["address"] == "10.88.0.2/32"


def _wait_stopped(pid: int, timeout: float = 10) -> None:
    """Wait until the plugin `pid` is stopped at its checkpoint."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with open(f"/proc/{pid}/stat") as f:
            if f.read().rsplit(")", 1)[1].split()[0] == "T":
                return
        time.sleep(0.01)
    raise AssertionError("plugin never reached its checkpoint")


def test_chained_list_reaches_del_in_reverse_and_check(netns, node, runtime, tmp_path):
    """A conflist with the reference tuning plugin after podnet-cni: prevResult flows through."""
    conf = as_list(podnet_conf(tmp_path), {"type": "tuning", "sysctl": {"net.ipv4.conf.eth0.accept_redirects": "0"}})
    pod = netns("pnt-pod")
    result = runtime.add(conf, pod, "tuned")
    assert result["ips"][0]["address"].startswith("10.88.0.")
    assert pod.run("sysctl", "-n", "net.ipv4.conf.eth0.accept_redirects").stdout.strip() == "0"
    assert runtime.check(conf, pod, "tuned").returncode == 0
    runtime.delete(conf, pod, "tuned")
    assert allocations(tmp_path) == []


@pytest.mark.parametrize("plugin_mode", ["server"], indirect=True)
def test_the_crash_hook_never_stops_the_node_server(plugin_mode, netns, node, runtime, tmp_path):
    conf = podnet_conf(tmp_path, "1.1.0")
    pods = [netns("pnt-pod") for _ in range(2)]
    code, result = runtime.plugin("podnet-cni", "ADD", conf, netns=pods[0].path, container_id="h0", **{STOP_AT: "veth"})
    assert code == 0, result
    code, result = runtime.plugin("podnet-cni", "ADD", conf, netns=pods[1].path, container_id="h1")
    assert code == 0, result  # the server still answers
