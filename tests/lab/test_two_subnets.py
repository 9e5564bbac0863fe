"""The lab on nodes in two underlay subnets (netns-labs/two-subnets.yaml): every node runs
`podnet agent` against the lab's etcd, pods are routed over VXLAN through the router between
the subnets, the tutorial's Services answer, and a node's agent killed with -9 is started
again by the lab with the same subnet and not one route, rule or FDB entry doubled."""

from __future__ import annotations

import collections
import dataclasses
import ipaddress
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid

import pytest

from podnet.lab import names, net, pids, spec
from podnet.lab.agents import HEALTHZ_PORT
from podnet.lab.node import Namespace
from podnet.lab.state import LabFiles
from tests.lab.conftest import lab_namespaces, podnet
from tests.lab.test_lab import fetch, wait_for

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not shutil.which("etcd"), reason="a lab's store is etcd: install etcd-server"),
]


@pytest.fixture(scope="module")
def lab():
    s = spec.load(os.path.join(ROOT, "netns-labs", "two-subnets.yaml"))
    s = dataclasses.replace(s, name=f"t{uuid.uuid4().hex[:7]}")
    try:
        net.Lab(s, keep=True, progress=lambda *_: None).up(wait=120)
        yield s
    finally:
        net.teardown(s.name)
        assert lab_namespaces(s.name) == []


def status(lab: str) -> dict:
    return LabFiles(lab).read_status()


def nodes(lab: str) -> dict[str, dict]:
    return {n["name"]: n for n in status(lab)["nodes"]}


def frontend_on(lab: str, node: str) -> dict:
    return next(p for p in status(lab)["pods"] if p["deployment"] == "frontend" and p["node"] == node and p["ready"])


def out(netns: str, *args: str) -> str:
    return Namespace(netns).run(list(args), check=True).out


def test_nodes_on_two_subnets_route_pods_over_vxlan_without_nat(lab):
    n = nodes(lab.name)
    assert ipaddress.ip_address(n["node1"]["ip"]) in ipaddress.ip_network("192.168.60.0/24")
    assert ipaddress.ip_address(n["node3"]["ip"]) in ipaddress.ip_network("192.168.61.0/24")
    # the agent's routes (its protocol number) through the VXLAN device, one per other node
    routes = out(n["node1"]["netns"], "ip", "route", "show", "proto", "151").splitlines()
    assert len(routes) == 2 and all("dev podnet.1" in r and "onlink" in r for r in routes)
    assert any(r.startswith(n["node3"]["subnet"]) for r in routes)
    # pods on either side of the router: ping, and the receiver sees the sender's own address
    a, b = frontend_on(lab.name, "node1"), frontend_on(lab.name, "node3")
    for src, dst in ((a, b), (b, a)):
        ping = Namespace(src["netns"]).run(["ping", "-c", "2", "-i", "0.2", "-W", "2", dst["ip"]])
        assert ping.ok, ping.out + ping.err
        served_by, seen_from = fetch(src["netns"], dst["ip"], 8080)
        assert (served_by, seen_from) == (dst["name"], src["ip"])  # no NAT between pods


def test_the_tutorial_services_answer_on_every_node(lab):
    backend = next(p for p in status(lab.name)["pods"] if p["deployment"] == "backend")
    got = podnet(lab.name, "curl", "svc/frontend", "--from", f"pod/{backend['name']}", "-n", "30", "--summary")
    assert "30 ok, 0 failed" in got.stdout
    frontends = {p["name"] for p in status(lab.name)["pods"] if p["deployment"] == "frontend"}
    assert {line.split()[1] for line in got.stdout.splitlines()[1:]} == frontends  # every node's pod served
    for node in ("node1", "node3"):  # a NodePort from outside, on either subnet
        assert "20 ok, 0 failed" in podnet(lab.name, "curl", f"{node}:30080", "-n", "20", "--summary").stdout


def healthy(lab: str, node_ip: str) -> bool:
    """The agent's /healthz, asked from inside the lab (as the lab's controller asks it)."""
    url = f"http://{node_ip}:{HEALTHZ_PORT}/healthz"
    return Namespace(names.lab_netns(lab)).run(["curl", "-sf", "-m", "1", url]).ok


def node_state(netns: str) -> dict[str, list[str]]:
    """What an agent programs in its node: routes, rules, VXLAN FDB and neighbours, iptables
    (without counters); sorted lists, so a doubled entry shows as one more line."""

    def lines(*args: str) -> list[str]:
        return sorted(line for line in out(netns, *args).splitlines() if line.strip())

    return {
        "routes": lines("ip", "route", "show", "proto", "151"),
        "rules": lines("ip", "rule"),
        "fdb": lines("bridge", "fdb", "show", "dev", "podnet.1"),
        "neigh": lines("ip", "neigh", "show", "dev", "podnet.1"),
        "iptables": iptables_rules(out(netns, "iptables-save")),
    }


def iptables_rules(text: str) -> list[str]:
    """Each rule prefixed by its table (a rule may be in two tables); no counters, no COMMIT."""
    rules, table = [], ""
    for line in text.splitlines():
        if line.startswith("*"):
            table = line[1:]
        elif line.startswith("-A"):
            rules.append(f"{table} {line}")
    return sorted(rules)


def test_an_agent_killed_with_9_comes_back_with_its_subnet_and_nothing_doubled(lab):
    files = LabFiles(lab.name)
    n = nodes(lab.name)
    before = {name: node_state(node["netns"]) for name, node in n.items()}
    subnet = n["node3"]["subnet"]
    a, b = frontend_on(lab.name, "node1"), frontend_on(lab.name, "node3")
    # requests from a pod on node1 to a pod on node3 all through the agent's death and restart
    loop = Namespace(a["netns"]).popen(
        [sys.executable, "-m", "podnet.lab.client", b["ip"], "8080", "--duration", "60", "--interval", "0.02",
         "--quiet"],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        old = pids.read(files.path("agent-node3.pid"))
        assert old is not None
        os.kill(old, signal.SIGKILL)
        t0 = time.monotonic()
        new = wait_for(lambda: (p := pids.read(files.path("agent-node3.pid"))) not in (None, old) and p, timeout=20)
        wait_for(lambda: healthy(lab.name, n["node3"]["ip"]), timeout=30, interval=0.2)
        restarted = time.monotonic() - t0
        time.sleep(1.0)  # requests after the restart too
    finally:
        loop.terminate()
        tally_text, _ = loop.communicate(timeout=30)

    tally = json.loads(tally_text.splitlines()[-1])
    assert tally["requests"] > 20 and tally["failed"] == 0, tally  # pods kept talking throughout
    assert new != old and restarted < 15
    assert nodes(lab.name)["node3"]["subnet"] == subnet  # the same subnet back from its lease
    after = {name: node_state(node["netns"]) for name, node in n.items()}
    for name in n:
        for what, entries in after[name].items():
            doubled = [e for e, k in collections.Counter(entries).items() if k > 1]
            assert not doubled, f"{name}: {what} doubled: {doubled}"
            assert entries == before[name][what], f"{name}: {what} changed"
    podnet(lab.name, "curl", "svc/frontend", "-n", "10")  # and Services still answer
