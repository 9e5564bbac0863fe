"""100 pods added at once and deleted at once, through libcni."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.cni.conftest import allocations, as_list, kernel_state, podnet_conf

pytestmark = [pytest.mark.integration, pytest.mark.slow]

PODS = 100


def test_100_parallel_adds_then_100_parallel_dels(plugin_mode, netns, node, runtime, tmp_path):
    conf = as_list(podnet_conf(tmp_path, ranges=[[{"subnet": "10.88.0.0/24"}]]))
    before = kernel_state(node)
    pods = [netns("pnt-pod") for _ in range(PODS)]
    with ThreadPoolExecutor(max_workers=16) as pool:
        results = list(pool.map(lambda i: runtime.add(conf, pods[i], f"scale-{i}"), range(PODS)))
    ips = [r["ips"][0]["address"].split("/")[0] for r in results]
    assert len(set(ips)) == PODS
    assert len(allocations(tmp_path)) == PODS
    with ThreadPoolExecutor(max_workers=16) as pool:
        pings = list(pool.map(lambda ip: node.run("ping", "-c1", "-W2", ip, check=False).returncode, ips))
    assert pings == [0] * PODS
    # and pod to pod, across the node
    assert pods[0].run("ping", "-c1", "-W2", ips[-1]).returncode == 0
    with ThreadPoolExecutor(max_workers=16) as pool:
        list(pool.map(lambda i: runtime.delete(conf, pods[i], f"scale-{i}"), range(PODS)))
    assert allocations(tmp_path) == []
    assert kernel_state(node) == before
