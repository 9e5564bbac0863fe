"""The iptables renderer, without a kernel: a golden full sync, and what a partial sync rewrites."""

from __future__ import annotations

import os

from proxy.iptables.render import RenderState, render
from proxy.model import NodeContext, ProxyModel
from proxy.objects import load_text
from proxy.source import object_key
from proxy.trackers import Trackers

GOLDEN = os.path.join(os.path.dirname(__file__), "golden")
NODE = NodeContext(name="n1", node_ips=("192.168.1.1",), cluster_cidrs=("10.244.0.0/16",))

OBJECTS = """
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  type: LoadBalancer
  clusterIP: 10.96.0.10
  externalIPs: [192.168.50.1]
  externalTrafficPolicy: Local
  healthCheckNodePort: 32000
  sessionAffinity: ClientIP
  sessionAffinityConfig: {clientIP: {timeoutSeconds: 60}}
  loadBalancerSourceRanges: [192.168.1.0/24]
  ports: [{name: http, port: 80, nodePort: 30080}]
status: {loadBalancer: {ingress: [{ip: 192.168.60.1}]}}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: web-1, labels: {kubernetes.io/service-name: web}}
addressType: IPv4
ports: [{name: http, port: 8080}]
endpoints: [{addresses: [10.244.1.2], nodeName: n1}, {addresses: [10.244.2.2], nodeName: n2}]
---
apiVersion: v1
kind: Service
metadata: {name: empty}
spec: {clusterIP: 10.96.0.11, ports: [{port: 53, protocol: UDP}]}
---
apiVersion: v1
kind: Service
metadata: {name: local}
spec: {clusterIP: 10.96.0.12, internalTrafficPolicy: Local, ports: [{port: 80}]}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: local-1, labels: {kubernetes.io/service-name: local}}
addressType: IPv4
ports: [{port: 8080}]
endpoints: [{addresses: [10.244.2.2], nodeName: n2}]
"""


def model_of(text: str) -> tuple[ProxyModel, Trackers, set]:
    t = Trackers("n1")
    for o in load_text(text, "x").objects:
        t.update(object_key(o), type(o), o)
    m = ProxyModel(NODE)
    changed = set(m.update(t, t.drain()))
    return m, t, changed


def test_full_sync_matches_golden():
    m, _, changed = model_of(OBJECTS)
    tx = render(m, changed, True, RenderState(present={"filter": set(), "nat": set()}))
    path = os.path.join(GOLDEN, "iptables_full.txt")
    if os.environ.get("PODNET_UPDATE_GOLDEN"):
        with open(path, "w") as f:
            f.write(tx.text())
    with open(path) as f:
        assert tx.text() == f.read()


def test_partial_sync_rewrites_only_changed_chains_and_deletes_stale_ones():
    m, t, changed = model_of(OBJECTS)
    first = render(m, changed, True, RenderState(present={"filter": set(), "nat": set()}))
    first.text()  # a full sync renders as it streams: its state is known once it has been read
    state = first.state
    assert state is not None
    # web loses its remote endpoint
    slice_text = OBJECTS.replace(", {addresses: [10.244.2.2], nodeName: n2}]", "]")
    for o in load_text(slice_text, "x").objects:
        t.update(object_key(o), type(o), o)
    changed = set(m.update(t, t.drain()))
    assert {str(n) for n in changed} == {"default/web:http"}
    tx = render(m, changed, False, state)
    nat = tx.tables["nat"]
    declared = set(nat.declare)
    assert "PODNET-SERVICES" in declared  # the shared chains are always rewritten
    local_chains = {c for (tbl, c) in state.ports[next(n for n in state.ports if n.name == "local")].chains}
    assert not (declared & local_chains)  # another Service's chains are left alone
    assert len(nat.delete) == 1 and nat.delete[0].startswith("PODNET-SEP-")  # the gone endpoint's chain
    assert "10.244.2.2:8080" not in tx.text()  # the gone endpoint is not rendered anywhere


def test_partial_sync_writes_only_the_endpoint_chains_that_are_new():
    """A Service gaining one endpoint: its service and policy chains are written whole (the
    random choice spans every endpoint), but of the endpoint chains only the new one."""
    m, t, changed = model_of(OBJECTS)
    first = render(m, changed, True, RenderState(present={"filter": set(), "nat": set()}))
    first.text()
    state = first.state
    assert state is not None
    more = OBJECTS.replace("nodeName: n2}]", "nodeName: n2}, {addresses: [10.244.3.3], nodeName: n3}]", 1)
    for o in load_text(more, "x").objects:
        t.update(object_key(o), type(o), o)
    changed = set(m.update(t, t.drain()))
    text = render(m, changed, False, state).text()
    seps = {line.split()[0][1:] for line in text.splitlines() if line.startswith(":PODNET-SEP-")}
    assert len(seps) == 1 and f"-A {seps.pop()} -p tcp -m recent" in text
    assert "--to-destination 10.244.3.3:8080" in text and "--to-destination 10.244.1.2:8080" not in text
    jumps = {w for line in text.splitlines() if line.startswith("-A PODNET-SVC-") for w in line.split()
             if w.startswith("PODNET-SEP-")}  # fmt: skip
    assert text.count(":PODNET-SVC-") == 1 and len(jumps) == 3  # the choice still spans every endpoint


def test_podnet_proxy_render_command(tmp_path):
    from click.testing import CliRunner

    from podnet.cli import cli

    (tmp_path / "objects.yaml").write_text(OBJECTS)
    (tmp_path / "bad.yaml").write_text("apiVersion: v1\nkind: Service\nmetadata: {name: x}\nspec: {clusterIP: 1.2.3}\n")
    result = CliRunner().invoke(
        cli,
        [
            "proxy",
            "render",
            "--objects-dir",
            str(tmp_path),
            "--hostname-override",
            "n1",
            "--cluster-cidr",
            "10.244.0.0/16",
            "--node-ip",
            "192.168.1.1",
        ],  # fmt: skip
    )
    assert result.exit_code == 0, result.output
    with open(os.path.join(GOLDEN, "iptables_full.txt")) as f:
        assert f.read() in result.output
