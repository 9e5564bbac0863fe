"""The fuzz tier's namespace half (root): podnet-cni executed for real, in a node namespace,
with generated hostile environments and netconfs; each call is refused with a typed error, and
nothing changed: links, addresses and routes of node and pod, IPAM records, and no process
left in the node namespace."""

from __future__ import annotations

import json
import subprocess

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.cni.conftest import allocations, kernel_state, podnet_conf

pytestmark = pytest.mark.integration

BAD_ENV = st.one_of(
    st.fixed_dictionaries({"ifname": st.sampled_from(["eth%d", "eth0\n", ".", "..", "a/b", "a:b", "x" * 16, "a b"])}),
    st.fixed_dictionaries({"container_id": st.sampled_from(["a" * 300, "abc\n", "-x", "a b", "é"])}),
)
BAD_IPAM = st.sampled_from(
    [
        {"type": "podnet-cni"},
        {"type": ".."},
        {"ranges": [[{"subnet": "169.254.1.0/24"}]]},
        {"ranges": [[{"subnet": "0.0.0.0/0"}]]},
        {"ranges": [[{"subnet": "ff00::/64"}]]},
        {"ranges": [[{"subnet": "::ffff:10.0.0.0/120"}]]},
        {"dataDir": "/tmp/" + "d" * 300},
        {"routes": [{"dst": "10.99.0.0/16", "gw": "10.77.0.1"}]},
    ]
)


def snapshot(node, pod, tmp_path) -> tuple:
    pids = subprocess.run(["ip", "netns", "pids", node.name], capture_output=True, text=True).stdout.split()
    return kernel_state(node), pod.links(), pod.routes(), pod.ip("addr"), allocations(tmp_path), pids


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture], max_examples=12)
@given(env=BAD_ENV, ipam=st.one_of(st.none(), BAD_IPAM))
def test_hostile_calls_change_nothing(netns, node, runtime, tmp_path, env, ipam):
    pod = netns("pnt-fuzz")
    conf = podnet_conf(tmp_path)
    if ipam:
        conf["ipam"].update(ipam)
    before = snapshot(node, pod, tmp_path)
    status, err = runtime.plugin("podnet-cni", "ADD", json.dumps(conf), netns=pod.path, **{"container_id": "c1", **env})
    assert status != 0 and err and err["code"] in (4, 7), err
    assert "internal error" not in err["msg"]
    assert snapshot(node, pod, tmp_path) == before
