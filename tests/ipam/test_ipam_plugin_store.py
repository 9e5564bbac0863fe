"""podnet-ipam with its pod addresses in a shared store ("store": "etcd://..." or "file:..."),
executed as a runtime executes it: CNI codes for a full range (11), an unreachable store
(11) and a store URL that does not parse (7). IPAM only: no namespace or link is touched."""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from tests.ipam.conftest import etcd_url


def ipam_conf(store: str | None, data_dir, subnet: str = "10.77.0.0/29") -> dict:
    ipam = {"type": "podnet-ipam", "ranges": [[{"subnet": subnet}]], "dataDir": str(data_dir)}
    if store is not None:
        ipam["store"] = store
    return {"cniVersion": "1.0.0", "name": "podnet-store-test", "type": "bridge", "ipam": ipam}


def run_ipam(cni_bin: str, verb: str, conf: dict, container_id: str) -> tuple[int, dict | None]:
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "CNI_COMMAND": verb,
        "CNI_CONTAINERID": container_id,
        "CNI_NETNS": "/var/run/netns/podnet-ipam-unused",  # IPAM never enters it
        "CNI_IFNAME": "eth0",
        "CNI_PATH": cni_bin,
    }
    proc = subprocess.run(
        [os.path.join(cni_bin, "podnet-ipam")],
        input=json.dumps(conf).encode(),
        capture_output=True,
        env=env,
        timeout=60,
    )
    out = proc.stdout.decode().strip()
    return proc.returncode, (json.loads(out) if out else None)


@pytest.fixture(params=[pytest.param("etcd", marks=pytest.mark.integration), "file", "dataDir"])
def store(request, tmp_path):
    if request.param == "etcd":
        return etcd_url(request.getfixturevalue("etcd_module"))
    if request.param == "file":
        return f"file:{tmp_path}/shared"
    return None


def test_pods_fill_the_range_then_get_code_11_and_del_frees(cni_bin, store, tmp_path):
    conf = ipam_conf(store, tmp_path / "data")
    got = []
    for i in range(5):  # 10.77.0.0/29: .1 is the gateway, .7 the broadcast
        rc, out = run_ipam(cni_bin, "ADD", conf, f"ctr-{i}")
        assert rc == 0, out
        got.append(out["ips"][0]["address"])
    assert sorted(got) == [f"10.77.0.{i}/29" for i in range(2, 7)]
    rc, out = run_ipam(cni_bin, "ADD", conf, "ctr-5")
    assert (rc, out["code"]) == (1, 11)
    assert "no free address left" in out["msg"]
    assert run_ipam(cni_bin, "ADD", conf, "ctr-0")[1]["ips"][0]["address"] == got[0]  # a retried ADD
    assert run_ipam(cni_bin, "DEL", conf, "ctr-3")[0] == 0
    assert run_ipam(cni_bin, "DEL", conf, "ctr-3")[0] == 0  # already gone
    rc, out = run_ipam(cni_bin, "ADD", conf, "ctr-5")
    assert rc == 0 and out["ips"][0]["address"] == got[3]
    if store is not None:  # with a shared store, dataDir holds only the node's lock
        assert [p.name for p in (tmp_path / "data" / "podnet-store-test").iterdir()] == [".lock"]


@pytest.mark.integration
def test_an_unreachable_etcd_is_code_11_try_again(cni_bin, etcd, tmp_path):
    conf = ipam_conf(etcd_url(etcd), tmp_path / "data")
    assert run_ipam(cni_bin, "ADD", conf, "ctr-a")[0] == 0
    etcd.kill()
    rc, out = run_ipam(cni_bin, "ADD", conf, "ctr-b")
    assert (rc, out["code"]) == (1, 11)
    assert "try again" in out["msg"] and str(etcd.client_port) in out["msg"]
    rc, out = run_ipam(cni_bin, "STATUS", {**conf, "cniVersion": "1.1.0"}, "")
    assert (rc, out["code"]) == (1, 50) and out["msg"].startswith("ipam.store: etcd at")
    etcd.start()
    assert run_ipam(cni_bin, "STATUS", {**conf, "cniVersion": "1.1.0"}, "")[0] == 0
    rc, out = run_ipam(cni_bin, "ADD", conf, "ctr-b")
    assert rc == 0 and out["ips"][0]["address"] == "10.77.0.3/29"


@pytest.mark.parametrize("url", ["etcd://nohost", "file:relative", "redis://x:1/y"])
def test_a_store_url_that_does_not_parse_is_code_7_naming_it(cni_bin, tmp_path, url):
    rc, out = run_ipam(cni_bin, "ADD", ipam_conf(url, tmp_path / "data"), "ctr-a")
    assert (rc, out["code"]) == (1, 7)
    assert out["msg"].startswith(f"ipam.store: {url!r}")
    assert not (tmp_path / "data").exists()


def _adds(conf: dict, worker: int, count: int, barrier, out) -> None:
    from cni.config import Invocation
    from cni.ipam_plugin import add

    barrier.wait()
    got = []
    for i in range(count):
        inv = Invocation("ADD", container_id=f"w{worker}-{i}", netns="/unused", ifname="eth0")
        got.append(add(conf, inv)["ips"][0]["address"])
    out.put(got)


@pytest.mark.integration
def test_concurrent_adds_on_one_node_with_etcd_get_distinct_addresses(etcd_module, tmp_path):
    import multiprocessing

    conf = ipam_conf(etcd_url(etcd_module), tmp_path / "data", subnet="10.78.0.0/24")
    ctx = multiprocessing.get_context("fork")
    barrier, out = ctx.Barrier(4), ctx.Queue()
    procs = [ctx.Process(target=_adds, args=(conf, w, 50, barrier, out)) for w in range(4)]
    for p in procs:
        p.start()
    try:
        got = [a for _ in procs for a in out.get(timeout=120)]
    finally:
        for p in procs:
            p.join(timeout=30)
            if p.is_alive():
                p.kill()
    assert len(got) == 200 and len(set(got)) == 200
    # host-local's order survives the concurrency: the first 200 addresses after the gateway
    assert sorted(got, key=lambda a: int(a.split(".")[3].split("/")[0])) == [f"10.78.0.{i}/24" for i in range(2, 202)]
