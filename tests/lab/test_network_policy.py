"""NetworkPolicy in a lab, with real packets: the recipes people bring
(ahmetb/kubernetes-network-policy-recipes) applied with `podnet lab apply -f`, each node's agent
enforcing them, probed from pods on both nodes: TCP handshakes for ingress, DNS queries to the
cluster DNS for egress. Deleting the policies restores every path; `lab down` leaves nothing."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time

import dnslib
import pytest

import netns
from podnet.lab import names
from podnet.lab.state import LabFiles
from tests.lab.conftest import PODNET, podnet, unique_spec

pytestmark = [
    pytest.mark.integration,
    pytest.mark.slow,
    pytest.mark.skipif(not shutil.which("etcd"), reason="a lab's store is etcd: install etcd-server"),
    pytest.mark.skipif(not shutil.which("nft"), reason="policies are nftables rules: install nftables"),
]

TOPOLOGY = {"nodes": ["a", "b"], "deployments": [], "services": []}


def deployment(name: str, app: str, replicas: int = 1, namespace: str = "default", probe: bool = False) -> str:
    probe_text = (
        "\n        readinessProbe: {httpGet: {port: http}, periodSeconds: 1, failureThreshold: 2}" if probe else ""
    )
    return f"""
apiVersion: apps/v1
kind: Deployment
metadata: {{name: {name}, namespace: {namespace}}}
spec:
  replicas: {replicas}
  selector: {{matchLabels: {{app: {app}}}}}
  template:
    metadata: {{labels: {{app: {app}}}}}
    spec:
      containers:
      - name: c
        image: podnet/http:v1
        ports: [{{name: http, containerPort: 8080}}]{probe_text}
"""


WORKLOADS = "\n---\n".join(
    [
        "apiVersion: v1\nkind: Namespace\nmetadata: {name: ops}",
        deployment("web", "web", replicas=2, probe=True),
        deployment("client", "client"),
        deployment("stranger", "stranger"),
        deployment("opsclient", "opsclient", namespace="ops"),
        """
apiVersion: v1
kind: Service
metadata: {name: web}
spec: {selector: {app: web}, ports: [{port: 80, targetPort: http}]}
""",
    ]
)

DENY_WEB = """
kind: NetworkPolicy
apiVersion: networking.k8s.io/v1
metadata: {name: web-deny-all}
spec: {podSelector: {matchLabels: {app: web}}, ingress: []}
"""
ALLOW_CLIENT = """
kind: NetworkPolicy
apiVersion: networking.k8s.io/v1
metadata: {name: web-allow-client}
spec:
  podSelector: {matchLabels: {app: web}}
  ingress: [{from: [{podSelector: {matchLabels: {app: client}}}]}]
"""
ALLOW_OPS = """
kind: NetworkPolicy
apiVersion: networking.k8s.io/v1
metadata: {name: web-allow-ops}
spec:
  podSelector: {matchLabels: {app: web}}
  ingress: [{from: [{namespaceSelector: {matchLabels: {purpose: production}}}]}]
"""
IPBLOCK = """
kind: NetworkPolicy
apiVersion: networking.k8s.io/v1
metadata: {name: web-ipblock}
spec:
  podSelector: {matchLabels: {app: web}}
  ingress: [{from: [{ipBlock: {cidr: 10.244.0.0/16, except: [%s/32]}}]}]
"""
PORT_9999 = """
kind: NetworkPolicy
apiVersion: networking.k8s.io/v1
metadata: {name: web-port-9999}
spec:
  podSelector: {matchLabels: {app: web}}
  ingress: [{ports: [{port: 9999}]}]
"""
NAMED_PORT = """
kind: NetworkPolicy
apiVersion: networking.k8s.io/v1
metadata: {name: web-port-http}
spec:
  podSelector: {matchLabels: {app: web}}
  ingress: [{ports: [{port: http, protocol: TCP}]}]
"""
DENY_EGRESS = """
kind: NetworkPolicy
apiVersion: networking.k8s.io/v1
metadata: {name: default-deny-egress}
spec: {podSelector: {}, policyTypes: [Egress]}
"""
ALLOW_DNS = """
kind: NetworkPolicy
apiVersion: networking.k8s.io/v1
metadata: {name: allow-dns}
spec:
  podSelector: {}
  policyTypes: [Egress]
  egress: [{ports: [{port: 53, protocol: UDP}, {port: 53, protocol: TCP}]}]
"""


def reaches(lab: str, pod: str, ip: str, port: int, timeout: float = 0.7) -> bool:
    """A TCP handshake from the pod to ip:port completes."""
    s = netns.socket(names.pod_netns(lab, pod), socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(timeout)
    try:
        s.connect((ip, port))
        return True
    except OSError:
        return False
    finally:
        s.close()


def resolves(lab: str, pod: str, dns_ip: str, timeout: float = 0.7) -> bool:
    """The cluster DNS answers the pod's UDP query for a Service name."""
    s = netns.socket(names.pod_netns(lab, pod), socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(timeout)
    try:
        s.sendto(dnslib.DNSRecord.question("web.default.svc.cluster.local").pack(), (dns_ip, 53))
        return bool(dnslib.DNSRecord.parse(s.recv(4096)).rr)
    except OSError:
        return False
    finally:
        s.close()


class Cluster:
    def __init__(self, lab: str, tmp_path):
        self.lab, self.tmp = lab, tmp_path
        st = LabFiles(lab).read_status()
        self.pods = {p["deployment"]: [] for p in st["pods"]}
        for p in st["pods"]:
            if p["ready"]:
                self.pods[p["deployment"]].append(p)
        services = {s["name"]: s for s in st["services"]}
        self.web_ips = [p["ip"] for p in self.pods["web"]]
        self.service_ip = services["web"]["clusterIP"]
        self.dns_ip = services["kube-dns"]["clusterIP"]

    def one(self, deployment: str) -> dict:
        return self.pods[deployment][0]

    def targets(self) -> list[tuple[str, int]]:
        """Every web pod on 8080 (one per node) and the web Service on 80."""
        return [(ip, 8080) for ip in self.web_ips] + [(self.service_ip, 80)]

    def apply(self, *manifests: str) -> None:
        path = self.tmp / f"p{time.monotonic_ns()}.yaml"
        path.write_text("\n---\n".join(manifests))
        podnet(self.lab, "apply", "-f", str(path))

    def delete(self, *names_: str) -> None:
        for n in names_:
            podnet(self.lab, "delete", "netpol", n)

    def expect(self, source: str, allowed: bool, timeout: float = 20) -> None:
        """Every target answers the source pod (allowed) or none does, within `timeout`; then
        once more, so a state that flips back is caught."""
        pod = self.one(source)["name"]
        deadline = time.monotonic() + timeout
        while True:
            got = [reaches(self.lab, pod, ip, port) for ip, port in self.targets()]
            if all(g == allowed for g in got):
                break
            assert time.monotonic() < deadline, f"{source} -> web: {got}, expected {allowed}"
            time.sleep(0.2)
        assert [reaches(self.lab, pod, ip, port) for ip, port in self.targets()] == [allowed] * len(got)

    def expect_dns(self, source: str, allowed: bool, timeout: float = 20) -> None:
        pod = self.one(source)["name"]
        deadline = time.monotonic() + timeout
        while resolves(self.lab, pod, self.dns_ip) != allowed:
            assert time.monotonic() < deadline, f"{source} -> DNS: expected {allowed}"
            time.sleep(0.2)


def node_tables(lab: str) -> list[str]:
    out = []
    for node in TOPOLOGY["nodes"]:
        r = netns.run(names.node_netns(lab, node), ["nft", "list", "table", "inet", "podnet-policy"],
                      capture_output=True, text=True)  # fmt: skip
        out.append(r.stdout)
    return out


def test_network_policy_recipes_with_real_packets(make_lab, tmp_path):
    s = unique_spec(TOPOLOGY)
    make_lab(s)
    lab = s.name
    (tmp_path / "workloads.yaml").write_text(WORKLOADS)
    podnet(lab, "apply", "-f", str(tmp_path / "workloads.yaml"), timeout=240)
    c = Cluster(lab, tmp_path)

    # refused as the API server refuses it, by the field's path; nothing stored
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        DENY_WEB.replace("ingress: []", "ingress: [{from: [{ipBlock: {cidr: 10.0.0.0/8}, podSelector: {}}]}]")
    )
    p = podnet(lab, "apply", "-f", str(bad), check=False)
    assert p.returncode != 0
    assert "spec.ingress[0].from[0]: Forbidden: may not specify both ipBlock and another peer" in p.stderr, p.stderr
    assert "No resources found" in podnet(lab, "get", "netpol").stdout

    assert len(c.web_ips) == 2 and {p["node"] for p in c.pods["web"]} == {"a", "b"}

    # nothing isolates anyone yet
    for source in ("client", "stranger", "opsclient"):
        c.expect(source, True)

    # deny all ingress to an app: pods and its own Service time out, from every node
    c.apply(DENY_WEB)
    for source in ("client", "stranger", "opsclient"):
        c.expect(source, False)
    # ... while the node's own probes still get through: the pods stay ready
    time.sleep(3)
    web = [p for p in LabFiles(lab).read_status()["pods"] if p["deployment"] == "web"]
    assert all(p["ready"] for p in web), web
    tables = node_tables(lab)
    assert all("isolated (ingress) by default/web-deny-all" in t for t in tables), tables
    # `podnet trace` says which policy isolated the pod
    web_pod = c.pods["web"][0]
    args = [PODNET, "trace", "--lab", lab, "--from", f"pod/{c.one('stranger')['name']}", "--to",
            f"pod/{web_pod['name']}:8080", "--no-kernel", "-o", "json"]  # fmt: skip
    traced = subprocess.run(args, capture_output=True, text=True, timeout=60)
    verdict = json.loads(traced.stdout)["verdict"]
    assert verdict["cause"] == "network-policy" and "default/web-deny-all" in verdict["detail"], verdict

    # allow from pods with a label: additive to the deny-all
    c.apply(ALLOW_CLIENT)
    c.expect("client", True)
    c.expect("stranger", False)
    assert all("allow default/web-allow-client ingress[0]" in t for t in node_tables(lab))

    # allow from a namespace, by a label it is given as the recipe does (kubectl label)
    c.apply(ALLOW_OPS)
    c.expect("opsclient", False)
    podnet(lab, "label", "ns", "ops", "purpose=production")
    c.expect("opsclient", True)
    c.expect("stranger", False)
    listed = podnet(lab, "get", "netpol").stdout
    assert "web-allow-client" in listed and "app=web" in listed, listed
    described = podnet(lab, "describe", "netpol", "web-allow-client").stdout
    assert all(p["name"] in described for p in c.pods["web"]) and "PodSelector: app=client" in described

    # ipBlock with except: the pod CIDR but the stranger's address
    c.delete("web-allow-client", "web-allow-ops")
    c.apply(IPBLOCK % c.one("stranger")["ip"])
    c.expect("client", True)
    c.expect("opsclient", True)
    c.expect("stranger", False)

    # a port-limited rule: 9999 opens nothing on 8080; the named port `http` (8080) does
    c.delete("web-ipblock")
    c.apply(PORT_9999)
    c.expect("client", False)
    c.apply(NAMED_PORT)
    c.expect("client", True)
    c.expect("stranger", True)

    # deleting the policies restores traffic
    c.delete("web-deny-all", "web-port-9999", "web-port-http")
    for source in ("client", "stranger", "opsclient"):
        c.expect(source, True)

    # default deny egress in a namespace, then allow DNS
    c.expect_dns("client", True)
    c.apply(DENY_EGRESS)
    c.expect("client", False)
    c.expect_dns("client", False)
    c.expect("opsclient", True)  # another namespace: not isolated
    c.apply(ALLOW_DNS)
    c.expect_dns("client", True)
    c.expect("client", False)  # DNS only
    c.delete("default-deny-egress")
    dns_file = tmp_path / "allow-dns.yaml"
    dns_file.write_text(ALLOW_DNS)
    assert "deleted" in podnet(lab, "delete", "-f", str(dns_file)).stdout  # as kubectl delete -f
    c.expect("client", True)
    c.expect_dns("client", True)
    assert all("jump" not in t for t in node_tables(lab)), "no pod is isolated any more"
