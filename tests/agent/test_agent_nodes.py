"""Agents on "node" namespaces against a real etcd: routes between nodes, pods talking across
nodes without NAT, and the faults the agent must survive."""

from __future__ import annotations

import json
import time

import pytest

from tests.agent.nodes import PREFIX, Cluster, ping

pytestmark = pytest.mark.integration


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
def test_pods_talk_across_nodes_without_nat(make_cluster, cni_client, backend, split):
    c = make_cluster(backend=backend, split=split, nodes=2)
    for node in c.nodes:
        c.start_agent(node)
    a, b = c.nodes
    c.wait(lambda: len(a.podnet_routes()) == 1 and len(b.podnet_routes()) == 1, 10, "one route per other node")
    pod_a, ip_a = c.add_pod(a, cni_client, "a")
    pod_b, ip_b = c.add_pod(b, cni_client, "b")
    assert ping(pod_a, ip_b, 2), f"{a.podnet_routes()} {b.podnet_routes()}"
    # No NAT: the server in pod b sees pod a's own address.
    server = pod_b.popen("python3", "-c", "import socket;s=socket.socket();s.setsockopt(1,2,1);s.bind(('0.0.0.0',7000));"
                         "s.listen();c,a=s.accept();c.send(a[0].encode());c.close()")  # fmt: skip
    try:
        time.sleep(0.3)
        seen = pod_a.run("python3", "-c", f"import socket;s=socket.create_connection(('{ip_b}',7000),3);"
                         "print(s.recv(100).decode())").stdout.strip()  # fmt: skip
    finally:
        server.kill()
        server.wait()
    assert seen == ip_a
    if backend == "vxlan":
        link = json.loads(a.ns.ip("-j", "-d", "link", "show", "podnet.1"))[0]
        assert link["mtu"] == 1450
        assert "onlink" in a.podnet_routes()[0]
        assert a.conflist()["plugins"][0].get("mtu") == 1450
