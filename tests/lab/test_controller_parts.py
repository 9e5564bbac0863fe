"""The parts of the lab controller, one concern each, without a kernel: they are plain
objects over pods in memory and files in a temporary directory."""

from __future__ import annotations

import dataclasses
import io
import json
import time

import pytest

from podnet import progress
from podnet.debug import probe
from podnet.debug.topology import Cluster, EndpointInfo
from podnet.lab import cli, complete, spec
from podnet.lab.checkpoint import Checkpoint
from podnet.lab.deployments import DeploymentReconciler
from podnet.lab.kubelet import Kubelet
from podnet.lab.pod import PENDING, RUNNING, Pod
from podnet.lab.service_addresses import ServiceAddresses

NODES = {n: {"name": n, "netns": f"x.node.{n}", "netconf": "/nonexistent"} for n in ("a", "b", "c")}


def kubelet() -> Kubelet:
    return Kubelet("t", NODES, "/nonexistent", lambda _svc: None, lambda: None)


def test_the_reconciler_spreads_new_pods_and_drops_the_not_yet_started_first():
    k = kubelet()
    rec = DeploymentReconciler(k, list(NODES), lambda: 0.0)
    tutorial = spec.default()
    rec.reconcile_all(tutorial, now=0.0)
    frontends = [p for p in k.pods.values() if p.deployment == "frontend"]
    assert len(frontends) == 3 and {p.node for p in frontends} == {"a", "b", "c"}
    assert all(p.phase == PENDING and p.labels["version"] == "v1" for p in frontends)
    running = frontends[0]
    running.phase = RUNNING
    smaller = dataclasses.replace(tutorial.deployment("frontend"), replicas=1)
    rec.reconcile_all(tutorial.with_deployment(smaller), now=0.0)
    assert [p.name for p in k.pods.values() if p.deployment == "frontend"] == [running.name]
    rec.reconcile_all(dataclasses.replace(tutorial, deployments=()), now=0.0)
    assert running.phase == "Terminating" and not [p for p in k.pods.values() if p.phase == PENDING]


def test_service_addresses_stay_with_their_service_and_survive_a_checkpoint(tmp_path):
    services = spec.default().services
    addrs = ServiceAddresses(str(tmp_path / "ipam"))
    addrs.sync(services, "10.96.0.0/16")
    assert addrs.node_ports_of(services[0]) == {80: 30080}
    auto = dataclasses.replace(services[1], name="extra", type="NodePort")
    addrs.sync((*services, auto), "10.96.0.0/16")
    assert addrs.node_ports_of(auto) == {6379: 30000}
    before = dict(addrs.cluster_ips)
    again = ServiceAddresses(str(tmp_path / "ipam"))
    again.restore(json.loads(json.dumps(addrs.record())))
    again.sync((*services, auto), "10.96.0.0/16")
    assert again.cluster_ips == before and again.node_ports == addrs.node_ports
    again.sync(services, "10.96.0.0/16")  # a Service that goes gives its addresses back
    assert "extra" not in again.cluster_ips and ("extra", 6379) not in again.node_ports


def test_a_checkpoint_keeps_what_a_successor_needs_and_is_rewritten_only_on_change(tmp_path):
    path = tmp_path / "checkpoint.json"
    cp = Checkpoint(str(path))
    pod = Pod("web-1", "web", "abcde", "v2", {"app": "web"}, "a", "command", 9000, ("sleep", "9"), None,
              phase=RUNNING, ip="10.244.0.2", pid=4242)  # fmt: skip
    cp.save([pod], {"clusterIPs": {"web": "10.96.0.10"}, "nodePorts": []}, {"web": 2})
    mtime = path.stat().st_mtime_ns
    cp.save([pod], {"clusterIPs": {"web": "10.96.0.10"}, "nodePorts": []}, {"web": 2})
    assert path.stat().st_mtime_ns == mtime
    saved = Checkpoint(str(path)).load()
    (back,) = saved.pods
    assert (back.name, back.template, back.command, back.ip, back.pid, back.phase) == (
        "web-1", "abcde", ("sleep", "9"), "10.244.0.2", 4242, RUNNING,
    )  # fmt: skip
    assert saved.restarts == {"web": 2} and saved.addresses["clusterIPs"] == {"web": "10.96.0.10"}
    assert Checkpoint(str(tmp_path / "none.json")).load() is None
    path.write_text(json.dumps({"version": 99}))
    with pytest.raises(ValueError, match="version"):
        Checkpoint(str(path)).load()


def test_progress_lines_are_throttled_but_the_last_one_always_shows():
    out = io.StringIO()
    meter = progress.Lines("pods ready", out, every=60)
    for done in range(5):
        meter.update(done, 10)
    meter.update(7, 10, "7 ready")
    meter.close()
    assert out.getvalue().splitlines() == ["pods ready 0/10", "pods ready 7/10 (7 ready)"]
    out = io.StringIO()
    meter = progress.Lines("x", out, every=60)
    meter.update(0, 2)
    meter.update(2, 2)  # the end is always worth a line
    meter.close()
    assert out.getvalue().splitlines() == ["x 0/2", "x 2/2"]


def test_a_probe_failure_against_an_endpoint_not_yet_programmed_is_called_a_transient():
    fresh = EndpointInfo("backend-x", "10.244.0.6", "a", ready=True, terminating=False, available=False)
    target = probe.Target("svc/backend", "10.96.0.5", 6379, True, (fresh,))
    m = probe.Matrix(["pod/p1", "pod/p2"], ["svc/backend"])
    m.cells[("pod/p1", "svc/backend")] = probe.Cell("pod/p1", "svc/backend", True, False, "refused")
    m.cells[("pod/p2", "svc/backend")] = probe.Cell("pod/p2", "svc/backend", True, True, "ok")
    probe.explain(m, [target], None)
    (note,) = m.notes
    assert "failed from 1 of 2 pods" in note and "backend-x 10.244.0.6 on a (ready)" in note and "transient" in note
    assert m.to_dict()["endpoints"]["svc/backend"]["before"][0]["state"] == "ready"
    # endpoints that changed while probing are named as they were at the end
    later = Cluster("t", services=[])
    m.notes.clear()
    probe.explain(m, [dataclasses.replace(target, endpoints=(dataclasses.replace(fresh, available=True),))], later)
    assert "by the end of the probe" in m.notes[0]


def test_completion_offers_refs_from_the_lab_status():
    st = {
        "pods": [{"name": "web-1"}],
        "services": [{"name": "web", "ports": [{"port": 80, "nodePort": 30080}]}],
        "nodes": [{"name": "a"}, {"name": "b"}],
        "deployments": [{"name": "web"}],
    }
    assert complete.references(st, ("pod", "svc")) == ["pod/web-1", "svc/web"]
    assert complete.references(st, ("svc",), ports=True) == ["svc/web", "svc/web:80"]
    assert complete.node_ports(st) == ["a:30080", "b:30080"]


def test_wide_pods_do_not_repeat_a_column_asked_for_with_L():
    st = {"pods": [{"name": "p", "ready": True, "phase": RUNNING, "created": 0, "ip": "1.2.3.4", "node": "a",
                    "version": "v1", "labels": {"version": "v1", "app": "web"}}]}  # fmt: skip
    rows = cli.pod_rows(st, True, ["version", "app", "app"], [])
    assert rows[0] == ["NAME", "READY", "STATUS", "AGE", "IP", "NODE", "VERSION", "APP"]
    assert rows[1][-2:] == ["v1", "web"]


def test_a_crash_loop_backs_off_and_a_kill_does_not():
    k = kubelet()
    pod = Pod("web-1", "web", "abcde", "v1", {"app": "web"}, "a", "command", 0, ("false",), None, phase=RUNNING)
    k._back_off(pod, crashed=True)  # the first restart is immediate, as kubelet's
    assert "default/web" not in k.add_failed_until
    waits = []
    for _ in range(7):
        before = time.monotonic()
        k._back_off(pod, crashed=True)
        waits.append(round(k.add_failed_until["default/web"] - before))
    assert waits == [10, 20, 40, 80, 160, 300, 300]
    k._back_off(pod, crashed=False)  # killed from outside: the count starts again
    assert k.crashes["default/web"] == 0


def test_a_bare_pod_is_made_once_under_its_own_name():
    k = kubelet()
    rec = DeploymentReconciler(k, list(NODES), lambda: 0)
    bare = spec.Deployment("client", labels={"run": "client"}, bare=True)
    lab = dataclasses.replace(spec.default(), deployments=(bare,))
    rec.reconcile_all(lab, now=0.0)
    rec.reconcile_all(lab, now=0.0)
    assert [p.name for p in k.pods.values()] == ["client"] and k.pods["client"].labels == {"run": "client"}


def test_a_rollout_stops_an_old_pod_only_once_every_node_programmed_its_replacement():
    """maxUnavailable=0 rests on Pod.available: the new pod was published at some etcd
    revision, and every node's agent reports it has programmed that revision or a later one."""
    k, synced = kubelet(), [0]
    rec = DeploymentReconciler(k, list(NODES), lambda: synced[0])
    tutorial = spec.default()
    one = tutorial.with_deployment(dataclasses.replace(tutorial.deployment("frontend"), replicas=1))
    rec.reconcile_all(one, now=0.0)
    (old,) = [p for p in k.pods.values() if p.deployment == "frontend"]
    old.phase, old.ready_at = RUNNING, 1.0
    rolled = one.with_deployment(dataclasses.replace(one.deployment("frontend"), version="v2"))
    rec.reconcile_all(rolled, now=2.0)
    (new,) = [p for p in k.pods.values() if p.deployment == "frontend" and p is not old]
    new.phase, new.ready_at = RUNNING, 3.0
    new.published_at, new.published_revision = 3.5, 40
    synced[0] = 39  # one node has not programmed it yet
    rec.reconcile_all(rolled, now=4.0)
    assert not new.available(synced[0]) and old.phase == RUNNING
    synced[0] = 40
    rec.reconcile_all(rolled, now=4.1)
    assert new.available(40) and old.phase == "Terminating"
    new.ready_at = 5.0  # ready again after a probe failure: not published since, not available
    assert not new.available(100)
