"""podnet-cni + podnet-ipam through libcni (cni-client), in real namespaces."""

from __future__ import annotations

import pytest

from tests.cni_runtime import Runtime

pytestmark = pytest.mark.integration

LIBCNI_VERSIONS = ["0.3.1", "0.4.0", "1.0.0"]  # libcni 1.1.2 speaks up to 1.0.0


def conflist(version: str, tmp_path, subnet: str = "10.88.0.0/24", **extra) -> dict:
    plugin = {
        "type": "podnet-cni",
        "ipam": {"type": "podnet-ipam", "ranges": [[{"subnet": subnet}]], "dataDir": str(tmp_path / "ipam")},
        **extra,
    }
    return {"cniVersion": version, "name": "podnet-test", "plugins": [plugin]}


@pytest.fixture
def node(netns):
    ns = netns("pnt-node")
    ns.ip("addr", "add", "192.0.2.10/32", "dev", "lo")
    return ns


@pytest.fixture
def runtime(node, cni_path, cni_client, tmp_path):
    return Runtime(node, cni_path, cni_client, str(tmp_path))


@pytest.mark.parametrize("version", LIBCNI_VERSIONS)
def test_two_pods_ping_each_other_and_the_node(version, netns, node, runtime, tmp_path):
    conf = conflist(version, tmp_path)
    before = node.links()
    pods = [netns("pnt-pod") for _ in range(2)]
    results = [runtime.add(conf, pod, f"ctr-{i}") for i, pod in enumerate(pods)]
    ips = [r["ips"][0]["address"].split("/")[0] for r in results]
    assert len(set(ips)) == 2
    if version == "1.0.0":
        assert "version" not in results[0]["ips"][0]
    else:
        assert results[0]["ips"][0]["version"] == "4"
    assert pods[0].run("ping", "-c1", "-W2", ips[1]).returncode == 0
    assert pods[1].run("ping", "-c1", "-W2", ips[0]).returncode == 0
    assert pods[0].run("ping", "-c1", "-W2", "192.0.2.10").returncode == 0
    assert runtime.check(conf, pods[0], "ctr-0").returncode == 0 or version == "0.3.1"
    for i, pod in enumerate(pods):
        runtime.delete(conf, pod, f"ctr-{i}")
    assert node.links() == before
    assert "10.88.0." not in node.routes()
    assert [p.name for p in (tmp_path / "ipam" / "podnet-test").iterdir() if not p.name.startswith(".")] == []
