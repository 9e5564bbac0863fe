"""`podnet cluster apply|get|delete` against a real etcd in a test namespace."""

from __future__ import annotations

import json

import pytest
import yaml

from tests.agent.nodes import PODNET, NamespacedEtcd

pytestmark = pytest.mark.integration

GOOD = """
apiVersion: v1
kind: Service
metadata: {name: web, namespace: shop}
spec: {clusterIP: 10.96.0.10, ports: [{port: 80}]}
---
apiVersion: v1
kind: Node
metadata: {name: node1}
"""
BAD_SECOND = """
apiVersion: v1
kind: Service
metadata: {name: ok}
spec: {ports: [{port: 80}]}
---
apiVersion: v1
kind: Service
metadata: {name: broken}
spec: {ports: [{port: 99999}]}
"""


@pytest.fixture
def etcd(netns, tmp_path):
    hub = netns("pnt-etcd")
    hub.ip("link", "add", "br0", "type", "bridge")
    hub.ip("addr", "add", "192.168.79.1/24", "dev", "br0")
    hub.ip("link", "set", "br0", "up")
    server = NamespacedEtcd(hub, "192.168.79.1", str(tmp_path))
    server.start()
    yield server
    server.kill()


def cli(etcd, *args, stdin=None):
    return etcd.hub.run(PODNET, "cluster", *args, "--store", etcd.url, check=False, input=stdin)


def test_apply_get_delete(etcd, tmp_path):
    f = tmp_path / "good.yaml"
    f.write_text(GOOD)
    r = cli(etcd, "apply", "-f", str(f))
    assert r.returncode == 0, r.stderr
    got = json.loads(cli(etcd, "get", "service/web", "-n", "shop", "-o", "json").stdout)
    assert got["spec"]["clusterIP"] == "10.96.0.10" and got["metadata"]["namespace"] == "shop"
    nodes = yaml.safe_load(cli(etcd, "get", "nodes", "-o", "yaml").stdout)
    assert [n["metadata"]["name"] for n in nodes["items"]] == ["node1"]
    assert cli(etcd, "delete", "svc/web", "-n", "shop").returncode == 0
    assert cli(etcd, "get", "service/web", "-n", "shop").returncode != 0
    assert cli(etcd, "delete", "svc/web", "-n", "shop").returncode == 1


def test_bad_object_refused_with_field_and_nothing_written(etcd, tmp_path):
    f = tmp_path / "bad.yaml"
    f.write_text(BAD_SECOND)
    r = cli(etcd, "apply", "-f", str(f))
    assert r.returncode != 0
    assert "spec.ports[0].port" in r.stderr and "nothing written" in r.stderr
    assert cli(etcd, "get", "services", "-o", "name").stdout.strip() == ""
