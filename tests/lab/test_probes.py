"""Probes, as kubelet runs them (issue 14): a pod whose network breaks (its eth0 set down)
fails its httpGet readiness probe, leaves its Service's ready endpoints and takes no more
requests, and is an endpoint again once its network is back; a failing liveness probe
restarts the workload, and RESTARTS counts it."""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest

from podnet.lab import names, net, spec
from podnet.lab.node import Namespace
from tests.lab.conftest import lab_namespaces, podnet

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not shutil.which("etcd"), reason="a lab's store is etcd: install etcd-server"),
]

WEB = """\
apiVersion: v1
kind: Service
metadata:
  name: web
spec:
  selector:
    app: web
  ports:
    - name: http
      port: 80
      targetPort: http
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 3
  selector:
    matchLabels:
      app: web
  template:
    metadata:
      labels:
        app: web
    spec:
      containers:
        - name: web
          image: example.org/web:v1
          ports:
            - name: http
              containerPort: 8080
          readinessProbe:
            httpGet:
              path: /healthz
              port: http
            periodSeconds: 1
            timeoutSeconds: 1
            failureThreshold: 1
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: client
spec:
  replicas: 1
  selector:
    matchLabels:
      app: client
  template:
    metadata:
      labels:
        app: client
    spec:
      containers:
        - name: client
          image: example.org/client:v1
          ports:
            - containerPort: 8080
"""

SICK = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: sick
spec:
  replicas: 1
  selector:
    matchLabels:
      app: sick
  template:
    metadata:
      labels:
        app: sick
    spec:
      containers:
        - name: sick
          image: example.org/sick:v1
          ports:
            - containerPort: 8080
          livenessProbe:
            tcpSocket:
              port: 9999
            periodSeconds: 1
            timeoutSeconds: 1
            failureThreshold: 1
"""


@pytest.fixture(scope="module")
def lab():
    name = f"p{uuid.uuid4().hex[:7]}"
    s = spec.load(os.path.join(ROOT, "netns-labs", "kube-tutorial.yaml"))
    built = net.Lab(spec.check(spec.LabSpec(**{**vars(s), "name": name})), keep=True, progress=lambda *_: None)
    try:
        built.up(wait=180)
        yield name
    finally:
        net.teardown(name)
        assert lab_namespaces(name) == [], f"lab {name} left namespaces behind"


def kubectl(lab: str, *args: str) -> str:
    return podnet(lab, *args, timeout=200).stdout


def items(text: str) -> list[dict]:
    data: Any = json.loads(text)
    if isinstance(data, dict):
        return data.get("items", [data])
    return data


def apply(lab: str, tmp_path, name: str, text: str, *flags: str) -> None:
    f = tmp_path / f"{name}.yaml"
    f.write_text(text)
    kubectl(lab, "apply", "-f", str(f), *flags)


def eventually(what: str, check: Callable[[], Any], timeout: float = 60, every: float = 0.25) -> Any:
    end = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < end:
        last = check()
        if last:
            return last
        time.sleep(every)
    raise AssertionError(f"not within {timeout:g}s: {what} (last: {last!r})")


def pods(lab: str, app: str) -> list[dict]:
    return items(kubectl(lab, "get", "pods", "-l", f"app={app}", "-o", "json"))


def all_ready(found: list[dict], n: int) -> list[dict] | None:
    return found if len(found) == n and all(p["ready"] for p in found) else None


def restarted(found: list[dict]) -> list[dict] | None:
    return found if found and found[0].get("restarts", 0) >= 1 else None


def ready_ips(lab: str, svc: str) -> set[str]:
    """The Service's ready endpoint addresses, as `get endpoints -o json` shows them."""
    (ep,) = items(kubectl(lab, "get", "endpoints", svc, "-o", "json"))
    return {e["ip"] for e in ep["endpoints"] if e["ready"]}


def requests(lab: str, pod: str, ip: str, count: int) -> dict:
    """count requests from inside pod to ip:80, each on a fresh connection; the client's tally."""
    args = [sys.executable, "-m", "podnet.lab.client", ip, "80", "--count", str(count), "--quiet", "--timeout", "2"]
    r = Namespace(names.pod_netns(lab, pod)).run(args, timeout=count * 3 + 30)
    return json.loads(r.out.splitlines()[-1])


def restore_network(ns: Namespace, neighbours: list[dict], routes: list[str]) -> None:
    """eth0 up again, with the CNI's permanent neighbour and routes that setting it down took."""
    ns.run(["ip", "link", "set", "eth0", "up"], check=True)
    for n in neighbours:
        ns.run(["ip", "neigh", "replace", n["dst"], "lladdr", n["lladdr"], "dev", n["dev"], "nud", "permanent"])
    for line in sorted(routes, key=lambda r: " via " in r):  # the gateway's route before routes via it
        ns.run(["ip", "route", "replace", *line.split()], check=True)


def test_a_pod_with_its_network_down_leaves_the_ready_endpoints_and_comes_back(lab, tmp_path):
    apply(lab, tmp_path, "web", WEB)
    web = eventually("3 web pods ready", lambda: all_ready(pods(lab, "web"), 3))
    all_ips = {p["ip"] for p in web}
    eventually("all 3 web pods are ready endpoints", lambda: ready_ips(lab, "web") == all_ips)
    client = eventually("the client pod running", lambda: [p for p in pods(lab, "client") if p["ready"]])[0]["name"]
    (svc,) = items(kubectl(lab, "get", "svc", "web", "-o", "json"))
    cluster_ip = svc["spec"]["clusterIP"]

    before = requests(lab, client, cluster_ip, 30)
    assert before["failed"] == 0 and len(before["pods"]) >= 2, before

    broken = web[0]
    ns = Namespace(names.pod_netns(lab, broken["name"]))
    routes = ns.run(["ip", "route", "show"], check=True).out.splitlines()
    neighbours = json.loads(ns.run(["ip", "-j", "neigh", "show", "nud", "permanent"], check=True).out or "[]")
    ns.run(["ip", "link", "set", "eth0", "down"], check=True)
    try:
        # period 1s, failureThreshold 1, timeout 1s: out within a few periods
        eventually(
            "the broken pod leaves the ready endpoints",
            lambda: ready_ips(lab, "web") == all_ips - {broken["ip"]},
            timeout=15,
        )
        assert not next(p for p in pods(lab, "web") if p["name"] == broken["name"])["ready"]
        during = requests(lab, client, cluster_ip, 40)
        assert during["failed"] == 0, during
        assert broken["name"] not in during["pods"] and len(during["pods"]) == 2, during
    finally:
        restore_network(ns, neighbours, routes)

    eventually("the pod is a ready endpoint again", lambda: ready_ips(lab, "web") == all_ips, timeout=15)
    after = requests(lab, client, cluster_ip, 60)
    assert after["failed"] == 0 and broken["name"] in after["pods"], after


def test_a_failing_liveness_probe_restarts_the_workload(lab, tmp_path):
    apply(lab, tmp_path, "sick", SICK, "--no-wait")  # it never becomes available: kubectl's apply
    (pod,) = eventually("the sick pod running", lambda: [p for p in pods(lab, "sick") if p["phase"] == "Running"])
    restarts = eventually("RESTARTS counts a liveness restart", lambda: restarted(pods(lab, "sick")))
    # the same pod, restarted in place, as kubelet restarts a container
    assert restarts[0]["name"] == pod["name"]
    table = kubectl(lab, "get", "pods", "-l", "app=sick").splitlines()
    head = table[0].split()
    row = next(line.split() for line in table[1:] if line.split()[0] == pod["name"])
    assert int(row[head.index("RESTARTS")]) >= 1, table
