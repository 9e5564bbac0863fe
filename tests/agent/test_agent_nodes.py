"""Agents on "node" namespaces against a real etcd: routes between nodes, pods talking across
nodes without NAT, and the faults the agent must survive."""

from __future__ import annotations

import json
import time

import pytest

from tests.agent.nodes import PODNET, Cluster, ping

pytestmark = pytest.mark.integration

# A one-connection server that answers with the address it sees the client at.
TELL_PEER = (
    "import socket;s=socket.socket();s.setsockopt(1,2,1);s.bind(('0.0.0.0',7000));"
    "s.listen();c,a=s.accept();c.send(a[0].encode());c.close()"
)


@pytest.fixture
def make_cluster(netns, tmp_path):
    made: list[Cluster] = []

    def make(**kw) -> Cluster:
        c = Cluster(netns, str(tmp_path), **kw)
        made.append(c)
        return c

    yield make
    for c in made:
        c.close()


@pytest.mark.parametrize(("backend", "split"), [("host-gw", False), ("vxlan", True)])
def test_pods_talk_across_nodes_without_nat(make_cluster, cni_driver, backend, split):
    c = make_cluster(backend=backend, split=split, nodes=2)
    for node in c.nodes:
        c.start_agent(node)
    a, b = c.nodes
    c.wait(lambda: len(a.podnet_routes()) == 1 and len(b.podnet_routes()) == 1, 10, "one route per other node")
    pod_a, ip_a = c.add_pod(a, cni_driver, "a")
    pod_b, ip_b = c.add_pod(b, cni_driver, "b")
    assert ping(pod_a, ip_b, 2), f"{a.podnet_routes()} {b.podnet_routes()}"
    # No NAT: the server in pod b sees pod a's own address.
    server = pod_b.popen("python3", "-c", TELL_PEER)
    try:
        time.sleep(0.3)
        seen = pod_a.run(
            "python3", "-c", f"import socket;s=socket.create_connection(('{ip_b}',7000),3);print(s.recv(100).decode())"
        ).stdout.strip()
    finally:
        server.kill()
        server.wait()
    assert seen == ip_a
    if backend == "vxlan":
        link = json.loads(a.ns.ip("-j", "-d", "link", "show", "podnet.1"))[0]
        assert link["mtu"] == 1450
        assert "onlink" in a.podnet_routes()[0]
        assert a.conflist()["plugins"][0].get("mtu") == 1450


SERVICE = """
apiVersion: v1
kind: Service
metadata: {{name: {name}, namespace: default}}
spec:
  clusterIP: {ip}
  ports: [{{port: 80, targetPort: 8080, protocol: TCP}}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: {name}-1
  namespace: default
  labels: {{kubernetes.io/service-name: {name}}}
addressType: IPv4
endpoints: [{{addresses: ["{endpoint}"], conditions: {{ready: true}}}}]
ports: [{{port: 8080, protocol: TCP}}]
"""


def apply(c: Cluster, text: str, tmp_path) -> None:
    path = tmp_path / f"objects-{time.monotonic_ns()}.yaml"
    path.write_text(text)
    r = c.hub.run(PODNET, "cluster", "apply", "-f", str(path), "--store", c.etcd.url, check=False)
    assert r.returncode == 0, r.stderr


def has_rule(node, ip: str) -> bool:
    return ip in node.ns.run("iptables-save", "-t", "nat").stdout


def test_kill9_restart_keeps_pods_and_subnet(make_cluster, cni_driver):
    c = make_cluster(backend="vxlan", nodes=2)
    for node in c.nodes:
        c.start_agent(node)
    a, b = c.nodes
    c.wait(lambda: len(a.podnet_routes()) == 1, 10, "routes")
    pod_a, _ = c.add_pod(a, cni_driver, "a")
    pod_b, ip_b = c.add_pod(b, cni_driver, "b")
    subnet_before = a.conflist()["plugins"][0]["ipam"]["ranges"]
    routes_before = b.podnet_routes()
    c.kill_agent(a)  # SIGKILL
    assert ping(pod_a, ip_b, 3), "pods stop talking while the agent is down"
    c.start_agent(a)
    assert a.conflist()["plugins"][0]["ipam"]["ranges"] == subnet_before
    assert b.podnet_routes() == routes_before
    assert len(a.podnet_routes()) == 1  # replaced in place, never doubled
    fdb = a.ns.run("bridge", "fdb", "show", "dev", "podnet.1").stdout.splitlines()
    assert len([line for line in fdb if "dst" in line]) == 1, fdb
    assert ping(pod_a, ip_b, 2)
    # The pod made before the restart is still allocated (the start-up GC kept it), a new one works.
    pod_a2, ip_a2 = c.add_pod(a, cni_driver, "a2")
    assert ping(pod_a2, ip_b, 2) and ping(pod_b, ip_a2, 2)


def test_node_gone_for_good_loses_routes_after_ttl(make_cluster, cni_driver):
    c = make_cluster(backend="vxlan", nodes=3, ttl=4)
    for node in c.nodes:
        c.start_agent(node)
    a, b, gone = c.nodes
    c.wait(lambda: all(len(n.podnet_routes()) == 2 for n in c.nodes), 10, "two routes on each node")
    pod_a, _ = c.add_pod(a, cni_driver, "a")
    pod_b, ip_b = c.add_pod(b, cni_driver, "b")
    c.kill_agent(gone)
    killed = time.monotonic()
    c.wait(lambda: len(a.podnet_routes()) == 1 and len(b.podnet_routes()) == 1, c.ttl + 3, "routes dropped")
    assert time.monotonic() - killed <= c.ttl + 2
    for n in (a, b):
        fdb = n.ns.run("bridge", "fdb", "show", "dev", "podnet.1").stdout
        assert fdb.count("dst") == 1, fdb
    assert ping(pod_a, ip_b, 2)


def test_etcd_restart_keeps_routes_and_watch_misses_nothing(make_cluster, cni_driver, tmp_path):
    c = make_cluster(backend="host-gw", nodes=2)
    for node in c.nodes:
        c.start_agent(node)
    a, b = c.nodes
    c.wait(lambda: len(a.podnet_routes()) == 1, 10, "routes")
    pod_a, _ = c.add_pod(a, cni_driver, "a")
    pod_b, ip_b = c.add_pod(b, cni_driver, "b")
    apply(c, SERVICE.format(name="before", ip="10.96.0.10", endpoint=ip_b), tmp_path)
    c.wait(lambda: has_rule(a, "10.96.0.10") and has_rule(b, "10.96.0.10"), 5, "service before the outage")
    c.etcd.kill()
    time.sleep(1)
    assert len(a.podnet_routes()) == 1 and has_rule(a, "10.96.0.10")
    assert ping(pod_a, ip_b, 2)
    pod_a2, ip_a2 = c.add_pod(a, cni_driver, "during")  # ADDs are node-local: no etcd needed
    c.etcd.start()
    # A change made right after the restart, before the agents' watches are back.
    apply(c, SERVICE.format(name="after", ip="10.96.0.11", endpoint=ip_b), tmp_path)
    c.wait(lambda: has_rule(a, "10.96.0.11") and has_rule(b, "10.96.0.11"), 15, "the change made during the outage")
    assert has_rule(a, "10.96.0.10")
    assert ping(pod_a2, ip_b, 2) and len(a.podnet_routes()) == 1
    for n in c.nodes:
        c.wait(lambda n=n: n.healthz()[0] == 200, 15, "healthy again")


def test_service_reaches_every_node(make_cluster, cni_driver, tmp_path):
    c = make_cluster(backend="host-gw", nodes=3)
    for node in c.nodes:
        c.start_agent(node)
    pod, ip = c.add_pod(c.nodes[0], cni_driver, "web")
    apply(c, SERVICE.format(name="web", ip="10.96.0.20", endpoint=ip), tmp_path)
    c.wait(lambda: all(has_rule(n, "10.96.0.20") for n in c.nodes), 5, "the Service on every node")
    client = c.make_ns("pnt-pod")
    c.runtime(c.nodes[2], cni_driver).add(c.nodes[2].conflist(), client, f"client-{client.name[-8:]}")
    server = pod.popen("python3", "-c", TELL_PEER.replace("7000", "8080"))
    try:
        time.sleep(0.3)
        r = client.run("python3", "-c", "import socket;s=socket.create_connection(('10.96.0.20',80),3);"
                       "print(s.recv(100).decode())", check=False)  # fmt: skip
    finally:
        server.kill()
        server.wait()
    assert r.returncode == 0, r.stderr
