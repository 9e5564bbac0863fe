"""ipMasq: traffic leaving the cluster CIDR is masqueraded to the node; pod-to-pod is not."""

from __future__ import annotations

import sys

import pytest

from tests.cni.conftest import as_list, podnet_conf

pytestmark = pytest.mark.integration

# Accepts one connection and answers with the address it came from.
PEER_ECHO = (
    "import socket; s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); "
    "s.bind(('0.0.0.0', 7000)); s.listen(); print('ready', flush=True)\n"
    "while True:\n c, a = s.accept(); c.sendall(a[0].encode()); c.close()"
)
ASK = "import socket,sys; c=socket.create_connection((sys.argv[1], 7000), timeout=5); print(c.recv(64).decode())"


def echo_server(ns):
    import subprocess

    proc = ns.popen(sys.executable, "-c", PEER_ECHO, stdout=subprocess.PIPE)
    assert proc.stdout.readline().strip() == b"ready"
    return proc


def seen_by(server_ip: str, client) -> str:
    return client.run(sys.executable, "-c", ASK, server_ip).stdout.strip()


def test_ipmasq_snat_leaving_the_cluster_but_not_between_pods(netns, node, runtime, tmp_path):
    outside = netns("pnt-outside")
    node.ip("link", "add", "uplink0", "type", "veth", "peer", "name", "wan0", "netns", outside.name)
    node.ip("addr", "add", "198.51.100.2/24", "dev", "uplink0")
    node.ip("link", "set", "uplink0", "up")
    outside.ip("addr", "add", "198.51.100.1/24", "dev", "wan0")
    outside.ip("link", "set", "wan0", "up")
    conf = as_list(podnet_conf(tmp_path, ipMasq=True, clusterCIDR="10.88.0.0/16"))
    pods = [netns("pnt-pod") for _ in range(2)]
    results = [runtime.add(conf, pod, f"masq-{i}") for i, pod in enumerate(pods)]
    ips = [r["ips"][0]["address"].split("/")[0] for r in results]
    echo_server(outside)
    echo_server(pods[1])
    assert seen_by("198.51.100.1", pods[0]) == "198.51.100.2"  # masqueraded to the node
    assert seen_by(ips[1], pods[0]) == ips[0]  # pod to pod keeps the pod's address
    assert "PODNET-MASQ-" in node.run("iptables-save", "-t", "nat").stdout
    runtime.delete(conf, pods[0], "masq-0")
    nat = node.run("iptables-save", "-t", "nat").stdout
    assert ips[0] not in nat and nat.count(":PODNET-MASQ-") == 1
    runtime.delete(conf, pods[1], "masq-1")
    assert "PODNET-MASQ-" not in node.run("iptables-save", "-t", "nat").stdout


def test_ipmasq_needs_cluster_cidr(netns, node, runtime, tmp_path):
    pod = netns("pnt-pod")
    status, err = runtime.plugin(
        "podnet-cni", "ADD", podnet_conf(tmp_path, "1.1.0", ipMasq=True), netns=pod.path, container_id="m"
    )
    assert status != 0 and err["code"] == 7 and "clusterCIDR" in err["msg"]


def test_gc_removes_the_masquerade_of_attachments_gone(netns, node, runtime, tmp_path):
    conf = podnet_conf(tmp_path, "1.1.0", ipMasq=True, clusterCIDR=["10.88.0.0/16"])
    pods = [netns("pnt-pod") for _ in range(2)]
    for i, pod in enumerate(pods):
        assert runtime.plugin("podnet-cni", "ADD", conf, netns=pod.path, container_id=f"gcm-{i}")[0] == 0
    assert node.run("iptables-save", "-t", "nat").stdout.count(":PODNET-MASQ-") == 2
    valid = {"cni.dev/valid-attachments": [{"containerID": "gcm-1", "ifname": "eth0"}]}
    assert runtime.plugin("podnet-cni", "GC", dict(conf, **valid)) == (0, None)
    nat = node.run("iptables-save", "-t", "nat").stdout
    assert nat.count(":PODNET-MASQ-") == 1 and "gcm-1" in nat and "gcm-0" not in nat
