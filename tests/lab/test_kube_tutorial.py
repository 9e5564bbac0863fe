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


# The Kubernetes docs' "Exposing an External IP Address" manifest, unchanged.
LOAD_BALANCER_EXAMPLE = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  labels:
    app.kubernetes.io/name: load-balancer-example
  name: hello-world
spec:
  replicas: 5
  selector:
    matchLabels:
      app.kubernetes.io/name: load-balancer-example
  template:
    metadata:
      labels:
        app.kubernetes.io/name: load-balancer-example
    spec:
      containers:
      - image: gcr.io/google-samples/hello-app:2.0
        name: hello-world
        ports:
        - containerPort: 8080
"""


CLIENT_POD = """\
apiVersion: v1
kind: Pod
metadata:
  name: client
  labels:
    app: client
spec:
  containers:
  - name: busybox
    image: busybox:1.28
    command: ["sleep", "3600"]
"""


def running(lab: str, selector: str) -> set[str]:
    """Names of the Running pods (not those still Terminating), as `get pods` shows them."""
    rows = [r.split() for r in kubectl(lab, "get", "pods", "-l", selector).splitlines()[1:]]
    return {r[0] for r in rows if r[2] == "Running"}


def test_the_imperative_tutorials(lab, tmp_path):
    """`expose`, `create deployment`, `create namespace`, `scale deployment NAME` as the docs'
    "Exposing an External IP Address" and minikube's hello-node type them."""
    manifest = tmp_path / "load-balancer-example.yaml"
    manifest.write_text(LOAD_BALANCER_EXAMPLE)
    kubectl(lab, "apply", "-f", str(manifest))
    out = kubectl(lab, "expose", "deployment", "hello-world", "--type=LoadBalancer", "--name=my-service")
    assert out.strip() == "service/my-service exposed"
    svc = json.loads(kubectl(lab, "get", "services", "my-service", "-o", "json"))
    assert svc["spec"]["selector"] == {"app.kubernetes.io/name": "load-balancer-example"}
    assert [(p["port"], p["targetPort"]) for p in svc["spec"]["ports"]] == [(8080, 8080)]
    lb = svc["status"]["loadBalancer"]["ingress"][0]["ip"]
    tally = kubectl(lab, "curl", f"http://{lb}:8080/", "-n", "30", "--summary")
    assert "30 ok, 0 failed" in tally and tally.count("hello-world-") >= 2, tally
    age = kubectl(lab, "get", "svc", "my-service").splitlines()[1].split()[-1]
    assert age.endswith(("s", "m")), age

    image = "registry.k8s.io/e2e-test-images/agnhost:2.39"
    netexec = ["--", "/agnhost", "netexec", "--http-port=8080"]
    kubectl(lab, "create", "deployment", "hello-node", f"--image={image}", *netexec)
    kubectl(lab, "expose", "deployment", "hello-node", "--type=LoadBalancer", "--port=8080")
    kubectl(lab, "scale", "deployment", "hello-node", "--replicas=3")
    rows = kubectl(lab, "get", "pods", "-l", "app=hello-node", "--show-labels").splitlines()
    assert rows[0].split()[-1] == "LABELS" and len(rows) == 4 and all("app=hello-node" in r for r in rows[1:])
    assert "served by hello-node-" in kubectl(lab, "curl", "svc/hello-node:8080")
    before = running(lab, "app=hello-node")
    assert kubectl(lab, "rollout", "restart", "deployment/hello-node").strip() == "deployment.apps/hello-node restarted"
    after = running(lab, "app=hello-node")
    assert len(after) == 3 and not before & after  # every pod replaced, by a rolling update
    assert "2 " in kubectl(lab, "rollout", "history", "deployment/hello-node")

    # nginx answers on its own port 80; a namespace's Service by --namespace
    assert kubectl(lab, "create", "namespace", "shop").strip() == "namespace/shop created"
    kubectl(lab, "create", "deployment", "web", "--image=nginx", "-n", "shop")
    kubectl(lab, "expose", "deployment", "web", "--port=80", "-n", "shop")
    assert "served by web-" in kubectl(lab, "curl", "svc/web", "--namespace", "shop")
    assert "10.244." in kubectl(lab, "describe", "svc", "web", "-n", "shop").split("Endpoints:")[1]

    # bare Pods: a client pod from a manifest and from `run`, exec by its name, deleted for good
    client = tmp_path / "client.yaml"
    client.write_text(CLIENT_POD)
    assert kubectl(lab, "apply", "-f", str(client)).strip() == "pod/client created"
    assert kubectl(lab, "run", "probe", "--image=busybox:1.28", "-l", "access=true", "--", "sleep", "3600").strip() == (
        "pod/probe created"
    )
    assert "web.shop.svc.cluster.local" in kubectl(lab, "exec", "client", "--", "getent", "hosts", "web.shop")
    answer = kubectl(lab, "exec", "probe", "--", "curl", "-s", "-m", "5", "http://web.shop/")
    assert "served by web-" in answer, answer
    assert {"client", "probe"} <= running(lab, "app=client") | running(lab, "access=true")
    (row,) = kubectl(lab, "get", "pods", "client", "--show-labels").splitlines()[1:]
    assert row.split()[0] == "client" and row.split()[-1] == "app=client"  # its own name and labels only
    assert "client" not in kubectl(lab, "get", "deploy")  # a Pod is no Deployment
    changed = tmp_path / "client2.yaml"
    changed.write_text(CLIENT_POD.replace("3600", "7200"))
    refused = podnet(lab, "apply", "-f", str(changed), check=False)
    assert refused.returncode != 0 and "pod updates may not change" in refused.stderr
    # kubectl run -i --rm: the command runs in a new pod, its output here, and the pod goes
    once = kubectl(lab, "run", "once", "--image=curlimages/curl", "-i", "--rm", "--restart=Never", "--",
                   "curl", "-s", "-m", "5", "http://web.shop/")  # fmt: skip
    assert "served by web-" in once and 'pod "once" deleted' in once, once
    assert not running(lab, "run=once")  # gone, or Terminating
    kubectl(lab, "delete", "pod", "client")
    kubectl(lab, "delete", "-f", str(client), "--ignore-not-found")
    assert "client" not in running(lab, "app=client")  # not made again, as a Deployment's pod would be

    # refused as kubectl refuses, and nothing made
    missing = podnet(lab, "expose", "deployment", "nope", "--port=80", check=False)
    assert missing.returncode != 0 and 'deployments.apps "nope" not found' in missing.stderr
    no_image = podnet(lab, "create", "deployment", "x", check=False)
    assert no_image.returncode != 0 and '"image" not set' in no_image.stderr
    assert "nope" not in kubectl(lab, "get", "svc") and " x " not in kubectl(lab, "get", "deploy")
