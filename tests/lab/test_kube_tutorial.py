"""The Kubernetes tutorial on a lab, with its manifests unchanged (netns-labs/tutorial/): the
LoadBalancer answers from outside the nodes, the frontend reaches `redis` by name through the
cluster DNS, and delete pod / scale / canary / apply v2 / rollout undo fail no request of a
continuous load from outside."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import uuid

import pytest

from podnet.lab import names, net, spec
from podnet.lab.node import Namespace
from podnet.lab.state import LabFiles
from tests.lab.conftest import lab_namespaces, podnet

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MANIFESTS = os.path.join(ROOT, "netns-labs", "tutorial")

pytestmark = [
    pytest.mark.integration,
    pytest.mark.slow,
    pytest.mark.skipif(not shutil.which("etcd"), reason="a lab's store is etcd: install etcd-server"),
]


@pytest.fixture
def lab(tmp_path):
    name = f"k{uuid.uuid4().hex[:7]}"
    s = spec.load(os.path.join(ROOT, "netns-labs", "kube-tutorial.yaml"))
    built = net.Lab(spec.check(spec.LabSpec(**{**vars(s), "name": name})), keep=True)
    try:
        built.up(wait=180)
        yield name
    finally:
        net.teardown(name)
        assert lab_namespaces(name) == []


def kubectl(lab: str, *args: str) -> str:
    return podnet(lab, *args, timeout=200).stdout


def test_the_tutorial_runs_unchanged(lab, tmp_path):
    kubectl(lab, "apply", "-f", os.path.join(MANIFESTS, "backend.yaml"), "-f", os.path.join(MANIFESTS, "frontend.yaml"))
    svc = json.loads(kubectl(lab, "get", "svc", "frontend", "-o", "json"))
    assert svc["kind"] == "Service" and svc["spec"]["type"] == "LoadBalancer"
    lb = svc["status"]["loadBalancer"]["ingress"][0]["ip"]

    # the backend by name, from a pod, through the cluster DNS
    pod = kubectl(lab, "get", "pods", "-l", "app=frontend", "-o", "name").split()[0].split("/")[1]
    hosts = kubectl(lab, "exec", f"pod/{pod}", "--", "getent", "hosts", "redis")
    assert "redis.default.svc.cluster.local" in hosts

    # a continuous load from outside the nodes, at the EXTERNAL-IP, through every step
    outside = names.lab_netns(lab)
    args = [sys.executable, "-m", "podnet.lab.client", lb, "80", "--duration", "600", "--interval", "0.01", "--quiet"]
    load = Namespace(outside).popen(args, stdout=subprocess.PIPE, text=True)
    try:
        kubectl(lab, "delete", "pod", pod)
        kubectl(lab, "scale", "deployment/frontend", "--replicas", "6")
        kubectl(lab, "apply", "-f", os.path.join(MANIFESTS, "frontend-canary.yaml"))
        v2 = tmp_path / "frontend.yaml"
        with open(os.path.join(MANIFESTS, "frontend.yaml")) as f:
            v2.write_text(f.read().replace(":v1", ":v2"))
        kubectl(lab, "apply", "-f", str(v2))
        assert "2 " in kubectl(lab, "rollout", "history", "deployment/frontend")
        kubectl(lab, "rollout", "undo", "deployment/frontend")
    finally:
        load.terminate()
        out, _ = load.communicate(timeout=60)
    tally = json.loads(out.splitlines()[-1])
    assert tally["requests"] > 100 and tally["failed"] == 0, tally
    st = LabFiles(lab).read_status()
    versions = {p["version"] for p in st["pods"] if p["deployment"] == "frontend" and p["ready"]}
    assert versions == {"v1"}
    # visits were counted in redis, found by name: the answers say so
    answer = kubectl(lab, "curl", f"http://{lb}/")
    assert "visits: unavailable" not in answer
    # curl's own target forms: IP:PORT from outside, and from a pod a Service's DNS names
    assert "served by frontend-" in kubectl(lab, "curl", f"{lb}:80")
    client = next(p["name"] for p in st["pods"] if p["deployment"] == "frontend" and p["ready"])
    for name in ("http://frontend/", "http://frontend.default.svc.cluster.local:80/"):
        assert "served by frontend-" in kubectl(lab, "curl", name, "--from", f"pod/{client}"), name

    # deleting the Service returns its address to the pool
    kubectl(lab, "delete", "svc", "frontend")
    assert "frontend" not in kubectl(lab, "get", "svc")
