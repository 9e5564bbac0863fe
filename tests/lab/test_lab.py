"""Labs in real namespaces: pods attached by podnet-cni through each node's agent, real
HTTP between them."""

from __future__ import annotations

import glob
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from netns import run as run_inside
from podnet.lab import cgroup, names, net, pids, podlogs, spec
from podnet.lab.node import Namespace
from podnet.lab.state import LabFiles
from tests.lab.conftest import lab_namespaces, podnet, unique_spec

pytestmark = pytest.mark.integration

TWO_NODES = {
    "nodes": ["a", "b"],
    "deployments": [{"name": "web", "replicas": 2, "workload": {"kind": "http", "port": 8080}}],
    "services": [],
}

FETCH = (
    "import http.client,sys;c=http.client.HTTPConnection(sys.argv[1],int(sys.argv[2]),timeout=3);"
    "c.request('GET','/');r=c.getresponse();r.read();"
    "print(r.getheader('X-Pod-Name'),r.getheader('X-Client-Address'))"
)


def status(lab: str) -> dict:
    return LabFiles(lab).read_status()


def pods(lab: str, deployment: str | None = None) -> list[dict]:
    return [p for p in status(lab)["pods"] if deployment is None or p["deployment"] == deployment]


def wait_for(cond, timeout: float = 20, interval: float = 0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = cond()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s")


def fetch(from_netns: str, host: str, port: int) -> tuple[str, str]:
    out = Namespace(from_netns).run([sys.executable, "-c", FETCH, host, str(port)], check=True, timeout=10).out
    pod, client = out.split()
    return pod, client


COMMAND = {
    "name": "files",
    "replicas": 1,
    "workload": {"kind": "command", "port": 9000, "command": ["python3", "-m", "http.server", "9000"]},
}


def test_cross_node_pod_to_pod_keeps_the_senders_address():
    s = unique_spec({**spec.tutorial_data(), **TWO_NODES, "deployments": [*TWO_NODES["deployments"], COMMAND]})
    with net.Lab(s, progress=lambda *_: None):
        check_cross_node(s)
        # a workload that is a command the topology names
        (files,) = pods(s.name, "files")
        web = pods(s.name, "web")[0]
        get = "import urllib.request,sys;print(urllib.request.urlopen(sys.argv[1],timeout=3).status)"
        out = Namespace(web["netns"]).run([sys.executable, "-c", get, f"http://{files['ip']}:9000/"], check=True)
        assert out.out.strip() == "200"
        ran = podnet(s.name, "exec", f"pod/{web['name']}", "--", "ip", "-4", "-o", "addr", "show", "dev", "eth0")
        assert f"{web['ip']}/32" in ran.stdout
    assert lab_namespaces(s.name) == []  # leaving the block tore it all down
    assert not os.path.exists(LabFiles(s.name).root)


def check_cross_node(s) -> None:
    web = pods(s.name, "web")
    assert sorted(p["node"] for p in web) == ["a", "b"]  # spread over both nodes
    src, dst = web
    served_by, seen_from = fetch(src["netns"], dst["ip"], 8080)
    assert served_by == dst["name"]
    assert seen_from == src["ip"]  # no NAT between pods on different nodes
    nodes = {n["name"]: n for n in status(s.name)["nodes"]}
    # the pods really are in the subnets their nodes' agents leased, routed host-gw through the
    # other node by a route the agent made (its protocol number), not by the lab
    import ipaddress

    for p in web:
        assert ipaddress.ip_address(p["ip"]) in ipaddress.ip_network(nodes[p["node"]]["subnet"])
    route = Namespace(nodes[src["node"]]["netns"]).ip("route", "show", nodes[dst["node"]]["subnet"]).out
    assert f"via {nodes[dst['node']]['ip']}" in route and "proto 151" in route


def root_snapshot() -> dict:
    def out(*args):
        return subprocess.run(args, capture_output=True, text=True, check=True).stdout

    return {
        "links": out("ip", "-o", "link"),
        "routes": out("ip", "route") + out("ip", "-6", "route"),
        "rules": out("ip", "rule") + out("ip", "-6", "rule"),
        "netns": set(names.list_netns()),
        "filters": out("iptables-save") + out("nft", "list", "ruleset"),
        "sysctls": out("sysctl", "net.ipv4.ip_forward", "net.ipv4.conf.all.rp_filter", "net.ipv6.conf.all.forwarding"),
    }


def test_down_after_kill_9_leaves_the_root_namespace_as_before(make_lab):
    before = root_snapshot()
    s = unique_spec()
    make_lab(s)
    assert len(lab_namespaces(s.name)) == 1 + 3 + 4 + 1  # lab, nodes, pods, the cluster DNS pod
    # crash everything podnet runs: the controller and a pod, with SIGKILL
    files = LabFiles(s.name)
    os.kill(files.controller_pid(), signal.SIGKILL)
    os.kill(pods(s.name)[0]["pid"], signal.SIGKILL)
    down = podnet(s.name, "down")
    assert "removed 9 namespaces" in down.stdout
    again = podnet(s.name, "down")  # safe to run twice
    assert again.returncode == 0
    after = root_snapshot()
    assert lab_namespaces(s.name) == []
    assert not [n for n in after["netns"] - before["netns"] if n.startswith(names.PREFIX + s.name)]
    assert after["links"] == before["links"]
    assert after["routes"] == before["routes"]
    assert after["rules"] == before["rules"]
    assert after["sysctls"] == before["sysctls"]
    assert _without_counters(after["filters"]) == _without_counters(before["filters"])
    assert not os.path.exists(files.root)
    net.teardown(s.name)  # and once more through the library: still fine


def test_down_leaves_no_process_namespace_mount_cgroup_or_file(make_lab):
    s = unique_spec()
    make_lab(s)
    files = LabFiles(s.name)
    group = cgroup.recorded(s.name)
    lab_processes = net._pids_in(net._netns_inodes(s.name))  # (pid, start time) of every one
    assert len(lab_processes) >= 1 + 1 + 3 + 4 + 1  # controller, etcd, agents, pods, DNS pod
    # a process started in a pod from outside the lab, as `lab exec` does: never in the cgroup
    pod_ns = names.pod_netns(s.name, pods(s.name)[0]["name"])
    stray = Namespace(pod_ns).popen(["sleep", "600"])
    podnet(s.name, "down")
    assert stray.wait(timeout=5) == -signal.SIGKILL
    assert [p for p, started in lab_processes if pids.matches(p, started)] == []
    assert lab_namespaces(s.name) == []
    assert group is None or not os.path.exists(group)
    with open("/proc/self/mountinfo") as f:
        assert [line for line in f if s.name in line] == []  # netns pins, the state tmpfs
    assert not os.path.exists(files.root)
    assert not [e for e in os.listdir(podlogs.ETC_NETNS) if s.name in e]


def _without_counters(text: str) -> list[str]:
    return [line for line in text.splitlines() if not line.startswith("#") and not line.startswith(":")]


def test_dead_pod_is_replaced_and_scale_follows(make_lab):
    s = unique_spec({**spec.tutorial_data(), **TWO_NODES})
    make_lab(s)
    victim = pods(s.name, "web")[0]
    os.kill(victim["pid"], signal.SIGKILL)
    t0 = time.monotonic()

    def replaced():
        web = [p for p in pods(s.name, "web") if p["ready"]]
        return len(web) == 2 and victim["name"] not in {p["name"] for p in web} and web

    web = wait_for(replaced, timeout=10)
    new = next(p for p in web if p["name"] != victim["name"] and p["name"] not in {victim["name"]})
    assert time.monotonic() - t0 < 5
    other = next(p for p in web if p is not new)
    assert fetch(other["netns"], new["ip"], 8080)[0] in {p["name"] for p in web}
    assert status(s.name)["deployments"][0]["restarts"] == 1

    podnet(s.name, "scale", "deploy/web", "--replicas", "5")
    assert len([p for p in pods(s.name, "web") if p["ready"]]) == 5
    podnet(s.name, "scale", "deploy/web", "--replicas", "1")
    wait_for(lambda: len(pods(s.name, "web")) == 1, timeout=20)  # the rest drained and deleted
    bad = podnet(s.name, "scale", "deploy/nope", "--replicas", "2", check=False)
    assert bad.returncode != 0 and 'deployments.apps "nope" not found' in bad.stderr  # kubectl's words
    table = podnet(s.name, "get", "pods", "-o", "wide", "-L", "app", "-L", "version").stdout.splitlines()
    assert table[0].split() == ["NAME", "READY", "STATUS", "RESTARTS", "AGE", "IP", "NODE", "APP", "VERSION"]
    assert len(table) == 2 and "Running" in table[1]
    (only,) = pods(s.name, "web")
    assert podnet(s.name, "get", "pods", "-o", "name").stdout == f"pod/{only['name']}\n"
    out = json.loads(podnet(s.name, "get", "nodes", "-o", "json").stdout)
    assert [n["name"] for n in out["items"]] == ["a", "b"]


def test_a_killed_controller_is_started_again_and_takes_over(make_lab):
    s = unique_spec({**spec.tutorial_data(), **TWO_NODES})
    make_lab(s)
    files = LabFiles(s.name)
    before = {p["name"]: p["pid"] for p in pods(s.name, "web")}
    old = files.controller_pid()
    agents = {n: pids.read(files.path(f"agent-{n}.pid")) for n in ("a", "b")}
    assert all(agents.values())
    os.kill(old, signal.SIGKILL)
    wait_for(lambda: files.controller_pid() is None, timeout=5)
    got = podnet(s.name, "get", "pods")  # any command finds it gone and starts it again
    assert "started it again" in got.stderr
    wait_for(lambda: status(s.name)["controllerPid"] not in (None, old), timeout=20)
    wait_for(lambda: status(s.name)["converged"], timeout=20)
    assert {p["name"]: p["pid"] for p in pods(s.name, "web")} == before  # pods carried on
    # and are available again: every agent has programmed what the new controller found in etcd
    wait_for(lambda: all(p["available"] for p in pods(s.name, "web")), timeout=15)
    assert [n["agent"] for n in status(s.name)["nodes"]] == ["running", "running"]
    # the agents carried on too: adopted through their pid files, not restarted
    assert {n: pids.read(files.path(f"agent-{n}.pid")) for n in ("a", "b")} == agents
    # the new controller watches the pods it took over: a death is still replaced
    victim = next(iter(before))
    os.kill(before[victim], signal.SIGKILL)
    wait_for(
        lambda: (
            len([p for p in pods(s.name, "web") if p["ready"]]) == 2 and victim not in {p["name"] for p in pods(s.name)}
        ),
        timeout=15,
    )
    podnet(s.name, "scale", "deploy/web", "--replicas", "3")
    assert len([p for p in pods(s.name, "web") if p["ready"]]) == 3


def test_bad_topology_is_refused_naming_the_field_and_changes_nothing(tmp_path):
    bad = tmp_path / "bad.yaml"
    name = f"t{os.urandom(3).hex()}"
    bad.write_text(f"name: {name}\nnodes: [n1]\nnetwork: {{clusterCIDR: 10.244.0.0/33}}\n")
    before = set(names.list_netns())
    p = subprocess.run([os.path.join(os.path.dirname(sys.executable), "podnet"), "lab", "up", str(bad)],
                       capture_output=True, text=True, timeout=30)  # fmt: skip
    assert p.returncode != 0
    assert "network.clusterCIDR" in p.stderr and "10.244.0.0/33" in p.stderr
    assert not os.path.exists(LabFiles(name).root)
    assert not [n for n in set(names.list_netns()) - before if names.is_lab_netns(name, n)]


def test_a_lab_in_nftables_mode_serves_its_service_and_node_port(make_lab):
    topology = {**spec.tutorial_data(), **TWO_NODES}
    topology["network"] = {**spec.tutorial_data()["network"], "proxyMode": "nftables"}
    topology["services"] = [
        {
            "name": "web",
            "type": "NodePort",
            "selector": {"app": "web"},
            "ports": [{"port": 80, "targetPort": 8080, "nodePort": 30090}],
        }
    ]
    topology["deployments"] = [dict(TWO_NODES["deployments"][0], labels={"app": "web"})]
    s = unique_spec(topology)
    assert s.network.proxy_mode == "nftables"
    make_lab(s)
    web = pods(s.name, "web")
    client = web[0]["name"]
    via_service = podnet(s.name, "curl", "svc/web", "--from", f"pod/{client}", "-n", "20").stdout
    assert "20 ok, 0 failed" in via_service
    served = {f[1] for f in (line.split() for line in via_service.splitlines()) if len(f) == 2 and f[0].isdigit()}
    assert served == {p["name"] for p in web}  # the summary: requests per serving pod
    via_node_port = podnet(s.name, "curl", "b:30090", "-n", "10").stdout
    assert "10 ok, 0 failed" in via_node_port
    node = next(n for n in names.list_netns() if names.is_lab_netns(s.name, n) and n.endswith(".node.a"))
    tables = run_inside(node, ["nft", "list", "tables"], capture_output=True, text=True)
    assert "table ip podnet" in tables.stdout


def test_a_controller_killed_while_pods_attach_leaks_no_address_or_namespace(make_lab):
    s = unique_spec({**spec.tutorial_data(), **TWO_NODES})
    make_lab(s)
    files = LabFiles(s.name)

    def attaching() -> bool:
        with open(files.checkpoint) as f:
            saved = json.load(f)
        return any(p["phase"] == "Attaching" for p in saved["pods"])

    old = files.controller_pid()
    files.change(lambda d: d["spec"]["deployments"][0].update(replicas=12))
    wait_for(attaching, timeout=20, interval=0.005)
    os.kill(old, signal.SIGKILL)  # namespaces made, CNI ADDs in flight: the checkpoint knows them
    wait_for(lambda: files.controller_pid() is None, timeout=5)
    podnet(s.name, "get", "pods")  # starts a controller, which takes over
    wait_for(lambda: status(s.name)["controllerPid"] != old and status(s.name)["converged"], timeout=60)

    def settled() -> tuple[set, set] | None:
        ready = [p for p in pods(s.name) if p["ready"]]
        on_disk = {os.path.basename(f) for f in glob.glob(files.path("nodes", "*", "ipam", "*", "[0-9]*"))}
        spaces = {n for n in lab_namespaces(s.name) if ".pod." in n}
        # 12 of the tutorial's and the cluster DNS pod
        if len(ready) == len(pods(s.name)) == 13 and on_disk == {p["ip"] for p in ready}:
            return on_disk, spaces
        return None

    _, spaces = wait_for(settled, timeout=30, interval=0.2)
    assert spaces == {p["netns"] for p in pods(s.name)}
