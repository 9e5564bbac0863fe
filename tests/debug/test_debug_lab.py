"""capture, trace and probe in a real lab: real namespaces, real packets, real rules."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from podnet.lab import net, spec
from podnet.lab.node import Namespace
from podnet.lab.state import LabFiles
from tests.lab.conftest import lab_namespaces, unique_spec

pytestmark = pytest.mark.integration

PODNET = os.path.join(os.path.dirname(sys.executable), "podnet")

LAB = {
    "nodes": ["a", "b", "c"],
    "network": {"underlayCIDR": "192.168.61.0/24", "clusterCIDR": "10.61.0.0/16", "serviceCIDR": "10.62.0.0/16"},
    "deployments": [
        {"name": "web", "replicas": 3, "workload": {"kind": "http", "port": 8080}},
        {"name": "db", "replicas": 1, "workload": {"kind": "http", "port": 8080}},
    ],
    "services": [
        {"name": "db", "selector": {"app": "db"}, "ports": [{"port": 80, "targetPort": 8080}]},
        {"name": "none", "selector": {"app": "nothing"}, "ports": [{"port": 80, "targetPort": 8080}]},
    ],
}


@pytest.fixture(scope="module")
def lab():
    s = unique_spec({**spec.tutorial_data(), **LAB})
    try:
        net.Lab(s, keep=True, progress=lambda *_: None).up(wait=90)
        _wait_programmed(s.name)
        yield s.name
    finally:
        net.teardown(s.name)
        assert lab_namespaces(s.name) == []


def _wait_programmed(lab: str) -> None:
    """Every node's proxy has the db Service's endpoint (the lab converges before that)."""
    st = LabFiles(lab).read_status()
    db_ip = next(s["clusterIP"] for s in st["services"] if s["name"] == "db")
    deadline = time.monotonic() + 20
    for n in st["nodes"]:
        while db_ip not in Namespace(n["netns"]).run(["iptables-save", "-t", "nat"]).out:
            assert time.monotonic() < deadline, f"proxy on {n['name']} never programmed {db_ip}"
            time.sleep(0.1)


def status(lab: str) -> dict:
    return LabFiles(lab).read_status()


def pods(lab: str) -> dict[str, dict]:
    return {p["name"]: p for p in status(lab)["pods"]}


def nodes(lab: str) -> dict[str, dict]:
    return {n["name"]: n for n in status(lab)["nodes"]}


def db_and_client(lab: str) -> tuple[dict, dict]:
    """The db pod, and a web pod on another node (so the path crosses the underlay)."""
    all_pods = pods(lab).values()
    db = next(p for p in all_pods if p["deployment"] == "db")
    client = next(p for p in all_pods if p["deployment"] == "web" and p["node"] != db["node"])
    return db, client


def podnet(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([PODNET, *args], capture_output=True, text=True, timeout=timeout)


def trace(lab: str, *args: str) -> tuple[int, dict]:
    p = podnet("trace", "--lab", lab, *args, "-o", "json")
    assert p.stdout, p.stderr
    return p.returncode, json.loads(p.stdout)


@contextlib.contextmanager
def routes_removed(lab: str, node: str):
    """Remove node's host-gw routes to the other nodes' pod subnets; put them back after."""
    ns = Namespace(nodes(lab)[node]["netns"])
    others = [n for n in nodes(lab).values() if n["name"] != node]
    for n in others:
        ns.ip("route", "del", n["subnet"])
    try:
        yield
    finally:
        for n in others:
            ns.ip("route", "replace", n["subnet"], "via", n["ip"])


def no_trace_leftovers(lab: str) -> None:
    for n in nodes(lab).values():
        ns = Namespace(n["netns"])
        tables = ns.run(["nft", "list", "tables"], check=True).out
        assert "podnet-trace-" not in tables
        pids = subprocess.run(["ip", "netns", "pids", n["netns"]], capture_output=True, text=True).stdout.split()
        cmds = [_cmdline(pid) for pid in pids]
        assert not [c for c in cmds if "monitor" in c], cmds


def _cmdline(pid: str) -> str:
    try:
        with open(f"/proc/{pid}/cmdline") as f:
            return f.read()
    except FileNotFoundError:
        return ""


def test_capture_writes_a_pcap_with_the_syn_the_dnated_syn_and_the_reply(lab, tmp_path):
    db, client = db_and_client(lab)
    cluster_ip = next(s["clusterIP"] for s in status(lab)["services"] if s["name"] == "db")
    pcap = tmp_path / "svc.pcap"
    cap = subprocess.Popen(
        [PODNET, "capture", "--lab", lab, f"pod/{client['name']}", f"pod/{db['name']}", "-w", str(pcap)]
        + ["--filter", "tcp", "--duration", "8"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        for _ in range(2):  # one "capturing on" line per place, printed once its socket is open
            assert "capturing on" in cap.stderr.readline()
        fetch = Namespace(client["netns"]).run(
            [sys.executable, "-m", "podnet.lab.client", cluster_ip, "80", "--count", "1"], timeout=10
        )
        assert fetch.ok, fetch.out + fetch.err
        time.sleep(0.3)
        cap.send_signal(signal.SIGINT)  # Ctrl-C: stops cleanly, the file is complete
        out, err = cap.communicate(timeout=10)
    finally:
        if cap.poll() is None:
            cap.kill()
            cap.wait()
    assert cap.returncode == 0, err
    assert f"{client['ip']}." in out  # one summary line per packet on stdout
    read = subprocess.run(["tcpdump", "-nr", str(pcap)], capture_output=True, text=True)
    assert read.returncode == 0, read.stderr
    lines = read.stdout.splitlines()
    syn = [x for x in lines if f"{client['ip']}." in x and f"> {cluster_ip}.80:" in x and "Flags [S]" in x]
    dnated = [x for x in lines if f"> {db['ip']}.8080:" in x and "Flags [S]" in x]
    reply = [x for x in lines if f"{cluster_ip}.80 > {client['ip']}." in x and "Flags [S.]" in x]
    assert syn and dnated and reply, read.stdout


def test_trace_of_a_service_names_the_dnat_and_the_delivery(lab):
    db, client = db_and_client(lab)
    rc, r = trace(lab, "--from", f"pod/{client['name']}", "--to", "svc/db:80")
    assert rc == 0
    assert r["verdict"]["result"] == "delivered"
    assert r["verdict"]["pod"] == db["name"]
    dnat = [n for n in r["nat"] if n["dnat"]]
    assert dnat and dnat[0]["dnat"] == f"{db['ip']}:8080" and dnat[0]["where"] == f"node/{client['node']}"
    assert not any(n["snat"] for n in r["nat"])  # pod to pod: no NAT of the source
    assert any(f"--to-destination {db['ip']}:8080" in h["rule"] for h in r["rules"])
    crossed = {(h["where"], h["direction"]) for h in r["hops"] if h["relation"] == "request"}
    assert {(f"node/{client['node']}", "in"), ("underlay", "in"), (f"pod/{db['name']}", "in")} <= crossed
    assert any(h["relation"] == "reply" and h["where"] == f"pod/{client['name']}" for h in r["hops"])
    no_trace_leftovers(lab)
    for n in nodes(lab).values():  # the probe's conntrack entries went with it
        table = Namespace(n["netns"]).run(["conntrack", "-L", "-p", "tcp", "--orig-port-src", str(r["probe_port"])])
        assert f"sport={r['probe_port']} " not in table.out


def test_trace_of_a_service_without_endpoints_names_the_reject_and_its_rule(lab):
    _, client = db_and_client(lab)
    rc, r = trace(lab, "--from", f"pod/{client['name']}", "--to", "svc/none:80")
    assert rc != 0
    v = r["verdict"]
    assert v["result"] == "rejected"
    assert v["where"] == f"node/{client['node']}"
    assert "-j REJECT" in v["rule"] and "default/none has no endpoints" in v["rule"]


def test_trace_names_no_route_on_the_node_that_lost_its_route(lab):
    db, client = db_and_client(lab)
    with routes_removed(lab, client["node"]):
        rc, r = trace(lab, "--from", f"pod/{client['name']}", "--to", f"pod/{db['name']}:8080", "--timeout", "1")
    assert rc != 0
    v = r["verdict"]
    assert v["result"] == "no-route"
    assert v["where"] == f"node/{client['node']}"
    assert nodes(lab)[db["node"]]["subnet"] in v["detail"]


def test_probe_is_green_and_fails_exactly_the_pairs_through_a_node_without_routes(lab, tmp_path):
    targets = [f"pod/{p}" for p in pods(lab)] + ["svc/db", "svc/none"]
    to = [a for t in targets for a in ("--to", t)]
    healthy = podnet("probe", "--lab", lab, *to, "-o", "json")
    assert healthy.returncode == 0, healthy.stdout + healthy.stderr
    cells = json.loads(healthy.stdout)["cells"]
    assert all(c["ok"] for c in cells if c["expected"])
    assert not any(c["ok"] for c in cells if c["target"] == "svc/none")
    db, _ = db_and_client(lab)
    broken = next(n for n in nodes(lab) if n != db["node"])
    where = {f"pod/{p['name']}": p["node"] for p in pods(lab).values()} | {"svc/db": db["node"]}
    png = tmp_path / "matrix.png"
    with routes_removed(lab, broken):
        p = podnet("probe", "--lab", lab, *to, "-o", "json", "--png", str(png))
    assert p.returncode == 1
    failed = {(c["source"], c["target"]) for c in json.loads(p.stdout)["cells"] if c["failed"]}
    expected = {
        (s, t)
        for s in where
        if s.startswith("pod/")
        for t in where
        if where[s] != where[t] and broken in (where[s], where[t])
    }
    assert failed == expected
    from PIL import Image

    with Image.open(png) as img:
        assert img.format == "PNG" and img.width > 100


def test_trace_interrupted_removes_its_flags_and_monitors(lab):
    db, client = db_and_client(lab)
    with routes_removed(lab, client["node"]):
        p = subprocess.Popen(
            [PODNET, "trace", "--lab", lab, "--from", f"pod/{client['name']}", "--to", f"pod/{db['name']}:8080"]
            + ["--timeout", "20"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            deadline = time.monotonic() + 15
            ns = Namespace(nodes(lab)[client["node"]]["netns"])
            while "podnet-trace-" not in ns.run(["nft", "list", "tables"]).out:
                assert time.monotonic() < deadline and p.poll() is None, "trace never set its flags"
                time.sleep(0.05)
            p.send_signal(signal.SIGTERM)
            p.communicate(timeout=15)
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
    assert p.returncode == 130
    no_trace_leftovers(lab)


def test_bad_references_are_named(lab):
    p = podnet("trace", "--lab", lab, "--from", "pod/nope", "--to", "svc/db:80")
    assert p.returncode != 0 and "pod/nope" in p.stderr
    p = podnet("trace", "--lab", lab, "--from", "web", "--to", "svc/db:80")
    assert p.returncode != 0 and "--from" in p.stderr
    _, client = db_and_client(lab)
    p = podnet("trace", "--lab", lab, "--from", f"pod/{client['name']}", "--to", "svc/db:http")
    assert p.returncode != 0 and "--to" in p.stderr
    p = podnet("capture", "--lab", lab, f"pod/{client['name']}", "--filter", "tcp port", "--count", "1")
    assert p.returncode != 0 and "--filter" in p.stderr
    no_trace_leftovers(lab)


def test_trace_icmp_to_a_pod_and_a_port_no_service_serves(lab):
    db, client = db_and_client(lab)
    rc, r = trace(lab, "--from", f"pod/{client['name']}", "--to", f"pod/{db['name']}", "--proto", "icmp")
    assert rc == 0 and r["verdict"]["result"] == "delivered" and r["verdict"]["pod"] == db["name"]
    assert any(h["relation"] == "reply" and "echo-reply" in h["packet"] for h in r["hops"])
    rc, r = trace(lab, "--from", f"pod/{client['name']}", "--to", "svc/db:81", "--timeout", "1")
    assert rc != 0
    v = r["verdict"]
    assert (v["result"], v["where"]) == ("no-route", f"node/{client['node']}")
    assert "no rule" in v["detail"] and "serves tcp 80" in v["detail"]
    no_trace_leftovers(lab)
