"""The tutorial walk-through, as a person does it with `podnet lab` (real namespaces,
real HTTP through pods attached by each node's agent and Services in its rules)."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import uuid

import pytest

from podnet.lab import net
from podnet.lab.node import Namespace
from podnet.lab.state import LabFiles
from tests.lab.conftest import lab_namespaces, podnet

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not shutil.which("etcd"), reason="a lab's store is etcd: install etcd-server"),
]


@pytest.fixture
def lab_name():
    name = f"t{uuid.uuid4().hex[:7]}"
    yield name
    net.teardown(name)
    assert lab_namespaces(name) == []


def status(lab: str) -> dict:
    return LabFiles(lab).read_status()


def running(lab: str, deployment: str) -> list[dict]:
    return [p for p in status(lab)["pods"] if p["deployment"] == deployment and p["ready"]]


def tally(lab: str, *args: str) -> dict:
    """`podnet lab curl ... --summary`, read back as numbers."""
    out = podnet(lab, "curl", *args, "--summary", check=False).stdout
    head = re.search(r"(\d+) requests, (\d+) ok, (\d+) failed", out)
    pods = dict((name, int(n)) for n, name in re.findall(r"^\s+(\d+)\s+(\S+)$", out, re.M))
    return {"requests": int(head[1]), "ok": int(head[2]), "failed": int(head[3]), "pods": pods}


def request_loop(netns: str, host: str, port: int, seconds: float) -> subprocess.Popen:
    args = [sys.executable, "-m", "podnet.lab.client", host, str(port), "--duration", str(seconds)]
    return Namespace(netns).popen([*args, "--interval", "0.005", "--quiet"], stdout=subprocess.PIPE, text=True)


def loop_result(proc: subprocess.Popen) -> dict:
    proc.terminate()  # the loop stops after its request in flight and prints its tally
    out, _ = proc.communicate(timeout=30)
    return json.loads(out.splitlines()[-1])


def test_tutorial_walk_through(lab_name):
    lab = lab_name
    up = subprocess.run(
        [os.path.join(os.path.dirname(sys.executable), "podnet"), "lab", "up", "--name", lab],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert up.returncode == 0, up.stdout + up.stderr
    assert "frontend   NodePort" in up.stdout
    st = status(lab)
    assert [n["agent"] for n in st["nodes"]] == ["running"] * 3
    frontends = running(lab, "frontend")
    assert len(frontends) == 3 and len({p["node"] for p in frontends}) == 3
    backend = running(lab, "backend")[0]

    # through the Service from a pod, and every frontend counts in the shared backend
    out = podnet(lab, "curl", "svc/frontend", "--from", f"pod/{backend['name']}", "-n", "30").stdout
    visits = [int(v) for v in re.findall(r"visits: (\d+)", out)]
    assert len(visits) == 30 and len(set(visits)) == 30  # one shared counter, pod -> Service -> pod
    assert set(re.findall(r"served by (\S+) ", out)) == {p["name"] for p in frontends}
    # through a NodePort from outside the nodes (the lab's underlay)
    t = tally(lab, "node2:30080", "-n", "30")
    assert t["ok"] == 30 and t["failed"] == 0

    # kill one frontend pod: a replacement serves within seconds
    victim = frontends[0]
    os.kill(victim["pid"], signal.SIGKILL)
    t0 = time.monotonic()
    seen: set[str] = set()
    while time.monotonic() - t0 < 10:
        fresh = {p["name"] for p in running(lab, "frontend")} - {p["name"] for p in frontends}
        if fresh:
            t = tally(lab, "svc/frontend", "--from", f"pod/{backend['name']}", "-n", "20")
            seen = set(t["pods"]) & fresh
            if seen:
                break
        time.sleep(0.05)
    replaced_in = time.monotonic() - t0
    assert seen, "no replacement answered through the Service within 10s"
    assert replaced_in < 5, f"replacement served only after {replaced_in:.1f}s"
    assert victim["name"] not in {p["name"] for p in status(lab)["pods"] if p["ready"]}

    # scale to 6 and back to 3
    podnet(lab, "scale", "deploy/frontend", "--replicas", "6")
    six = {p["name"] for p in running(lab, "frontend")}
    assert len(six) == 6
    t = tally(lab, "node1:30080", "-n", "90")
    assert t["failed"] == 0 and set(t["pods"]) == six
    podnet(lab, "scale", "deploy/frontend", "--replicas", "3")
    assert len(running(lab, "frontend")) == 3

    # a canary: 1 pod of 4 on v2 takes about a quarter of 400 requests
    applied = podnet(lab, "apply", "-f", os.path.join(ROOT, "netns-labs", "canary.yaml"))
    assert applied.stdout == "deployment.apps/frontend-canary created\n"
    canary = running(lab, "frontend-canary")
    assert len(canary) == 1 and canary[0]["version"] == "v2"
    time.sleep(0.5)  # the endpoint reaches every node's rules
    t = tally(lab, "node3:30080", "-n", "400")
    assert t["ok"] == 400
    share = t["pods"].get(canary[0]["name"], 0)
    assert 55 <= share <= 150, f"canary served {share} of 400"
    podnet(lab, "delete", "deploy/frontend-canary")

    # rolling update to v2 under a steady request loop: not one request fails
    loop = request_loop(backend["netns"], st["services"][0]["clusterIP"], 80, seconds=60)
    time.sleep(0.5)
    podnet(lab, "rollout", "deploy/frontend", "--version", "v2")
    time.sleep(2)  # and on, while the old pods drain and go
    result = loop_result(loop)
    assert result["failed"] == 0, result["errors"]
    assert result["ok"] > 200
    assert result["versions"].get("v1") and result["versions"].get("v2")
    assert {p["version"] for p in running(lab, "frontend")} == {"v2"}

    # rollback, under the same kind of loop
    loop = request_loop(backend["netns"], st["services"][0]["clusterIP"], 80, seconds=60)
    time.sleep(0.5)
    podnet(lab, "rollout", "undo", "deploy/frontend")
    time.sleep(2)
    result = loop_result(loop)
    assert result["failed"] == 0, result["errors"]
    assert {p["version"] for p in running(lab, "frontend")} == {"v1"}
    time.sleep(0.5)
    t = tally(lab, "svc/frontend", "-n", "30")
    assert t["ok"] == 30 and all(name.startswith("frontend-") for name in t["pods"])
    assert {p["version"] for p in status(lab)["pods"] if p["name"] in t["pods"]} == {"v1"}
