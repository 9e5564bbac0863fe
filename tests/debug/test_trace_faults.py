"""Every broken path gets a verdict that names its place and cause (issue 15).

One lab per proxy mode (iptables, nftables), shared by the module; each test injects one
fault into the lab's namespaces, traces, and restores the lab in a `finally`, so the next
test starts from a healthy cluster. Traffic only goes to addresses inside the lab.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys

import pytest

from podnet.lab import net, spec
from podnet.lab.node import Namespace
from podnet.lab.state import LabFiles
from tests.lab.conftest import lab_namespaces, unique_spec

pytestmark = pytest.mark.integration

PODNET = os.path.join(os.path.dirname(sys.executable), "podnet")

LAB = {
    "nodes": ["a", "b"],
    "network": {"underlayCIDR": "192.168.63.0/24", "clusterCIDR": "10.63.0.0/16", "serviceCIDR": "10.64.0.0/16"},
    "deployments": [
        {"name": "web", "replicas": 2, "workload": {"kind": "http", "port": 8080}},
        {"name": "db", "replicas": 1, "workload": {"kind": "http", "port": 8080}},
    ],
    "services": [
        {"name": "db", "type": "NodePort", "selector": {"app": "db"}, "ports": [{"port": 80, "targetPort": 8080}]},
        {"name": "none", "selector": {"app": "nothing"}, "ports": [{"port": 80, "targetPort": 8080}]},
    ],
}


@pytest.fixture(scope="module", params=["iptables", "nftables"])
def lab(request):
    s = unique_spec({**spec.tutorial_data(), **LAB, "network": {**LAB["network"], "proxyMode": request.param}})
    try:
        net.Lab(s, keep=True, progress=lambda *_: None).up(wait=120)
        yield s.name
    finally:
        net.teardown(s.name)
        assert lab_namespaces(s.name) == []


def status(lab: str) -> dict:
    return LabFiles(lab).read_status()


def nodes(lab: str) -> dict[str, dict]:
    return {n["name"]: n for n in status(lab)["nodes"]}


def db_and_client(lab: str) -> tuple[dict, dict]:
    pods = status(lab)["pods"]
    db = next(p for p in pods if p["deployment"] == "db")
    client = next(p for p in pods if p["deployment"] == "web" and p["node"] != db["node"])
    return db, client


def host_veth(lab: str, pod: dict) -> str:
    from podnet.debug import topology

    return topology.lab_cluster(lab).pod(pod["name"]).host_veth


def trace(lab: str, *args: str, timeout: float = 1.0) -> dict:
    p = subprocess.run(
        [PODNET, "trace", "--lab", lab, *args, "--timeout", str(timeout), "-o", "json"],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert p.stdout, p.stderr
    assert "Traceback" not in p.stderr, p.stderr
    r = json.loads(p.stdout)
    assert (p.returncode == 0) == (r["verdict"]["result"] == "delivered"), (p.returncode, r["verdict"])
    no_leftovers(lab, r["probe_port"])
    return r


def no_leftovers(lab: str, port: int | None = None) -> None:
    for n in nodes(lab).values():
        assert "podnet-trace-" not in Namespace(n["netns"]).run(["nft", "list", "tables"], check=True).out
    if port is not None:  # this trace's bpftrace (its program names the probe's port), not another's
        mine = subprocess.run(["pgrep", "-f", f"a == {port} "], capture_output=True, text=True).stdout
        assert not mine.split(), "a bpftrace outlived its trace"


@contextlib.contextmanager
def restored(netns: str):
    """Put back the namespace's links, routes, rp_filter and addresses as they were."""
    ns = Namespace(netns)
    links = json.loads(ns.run(["ip", "-j", "link", "show"], check=True).out)
    routes = ns.run(["ip", "route", "show"], check=True).out.splitlines()
    sysctls = ns.run(["sysctl", "-a", "-r", r"rp_filter$"], check=True).out.splitlines()
    # a link set down loses its neighbours, the CNI's permanent entry for the pod's gateway too
    neighbours = json.loads(ns.run(["ip", "-j", "neigh", "show", "nud", "permanent"], check=True).out or "[]")
    try:
        yield ns
    finally:
        for link in links:
            state = "up" if "UP" in link["flags"] else "down"
            arp = "off" if "NOARP" in link["flags"] else "on"
            ns.run(["ip", "link", "set", link["ifname"], state, "arp", arp, "mtu", str(link["mtu"])])
        for n in neighbours:
            ns.run(["ip", "neigh", "replace", n["dst"], "lladdr", n["lladdr"], "dev", n["dev"], "nud", "permanent"])
        for line in sysctls:
            ns.run(["sysctl", "-q", "-w", line.replace(" ", "")])
        # routes to a gateway need the route to the gateway first
        for line in sorted(routes, key=lambda r: " via " in r):
            ns.run(["ip", "route", "replace", *line.split()], check=True)


def verdict(r: dict, result: str | None, where: str, cause: str) -> dict:
    v = r["verdict"]
    assert (v["where"], v["cause"]) == (where, cause), v
    if result:
        assert v["result"] == result, v
    return v


def kernel_says(r: dict, reason: str, where: str) -> None:
    if r["kernel_status"]:
        pytest.skip(f"the kernel's reasons are not available here: {r['kernel_status']}")
    assert any(d["reason"] == reason and d["where"] == where for d in r["kernel"]), r["kernel"]
    assert reason in r["verdict"]["kernel"], r["verdict"]


# -- interfaces -----------------------------------------------------------------------------
def test_destination_pod_eth0_down(lab):
    db, client = db_and_client(lab)
    with restored(db["netns"]) as ns:
        ns.run(["ip", "link", "set", "eth0", "down"], check=True)
        r = trace(lab, "--from", f"pod/{client['name']}", "--to", f"pod/{db['name']}:8080", "--no-kernel")
    v = verdict(r, "unreachable", f"pod/{db['name']}", "interface-down")
    assert v["ifname"] == "eth0"


def test_source_pod_eth0_down(lab):
    db, client = db_and_client(lab)
    with restored(client["netns"]) as ns:
        ns.run(["ip", "link", "set", "eth0", "down"], check=True)
        r = trace(lab, "--from", f"pod/{client['name']}", "--to", f"pod/{db['name']}:8080", "--no-kernel")
    verdict(r, "unreachable", f"pod/{client['name']}", "interface-down")


def test_host_side_veth_down(lab):
    db, client = db_and_client(lab)
    veth = host_veth(lab, db)
    with restored(nodes(lab)[db["node"]]["netns"]) as ns:
        ns.run(["ip", "link", "set", veth, "down"], check=True)
        r = trace(lab, "--from", f"pod/{client['name']}", "--to", f"pod/{db['name']}:8080", "--no-kernel")
    v = verdict(r, "unreachable", f"node/{db['node']}", "interface-down")
    assert v["ifname"] == veth


def test_node_uplink_down(lab):
    db, client = db_and_client(lab)
    with restored(nodes(lab)[db["node"]]["netns"]) as ns:
        ns.run(["ip", "link", "set", "eth0", "down"], check=True)
        r = trace(lab, "--from", f"pod/{client['name']}", "--to", f"pod/{db['name']}:8080", "--no-kernel")
    v = verdict(r, "unreachable", f"node/{db['node']}", "interface-down")
    assert v["ifname"] == "eth0"


# -- routes ---------------------------------------------------------------------------------
def test_no_route_in_the_source_pod(lab):
    db, client = db_and_client(lab)
    with restored(client["netns"]) as ns:
        ns.run(["ip", "route", "del", "default"], check=True)
        r = trace(lab, "--from", f"pod/{client['name']}", "--to", f"pod/{db['name']}:8080", "--no-kernel")
    v = verdict(r, "no-route", f"pod/{client['name']}", "no-route")
    assert db["ip"] in v["detail"]


def test_no_route_on_a_node_with_the_kernels_reason(lab):
    db, client = db_and_client(lab)
    node = nodes(lab)[client["node"]]
    with restored(node["netns"]) as ns:
        ns.run(["ip", "route", "del", nodes(lab)[db["node"]]["subnet"]], check=True)
        ns.run(["ip", "route", "del", "default"], check=True)
        r = trace(lab, "--from", f"pod/{client['name']}", "--to", f"pod/{db['name']}:8080")
    verdict(r, "no-route", f"node/{client['node']}", "no-route")
    kernel_says(r, "IP_INNOROUTES", f"node/{client['node']}")


def test_a_route_that_takes_the_packet_elsewhere_is_named(lab):
    db, client = db_and_client(lab)
    node = nodes(lab)[client["node"]]
    wrong = host_veth(lab, client)
    with restored(node["netns"]) as ns:
        ns.run(["ip", "route", "replace", nodes(lab)[db["node"]]["subnet"], "dev", wrong], check=True)
        r = trace(lab, "--from", f"pod/{client['name']}", "--to", f"pod/{db['name']}:8080", "--no-kernel")
    v = verdict(r, "no-route", f"node/{client['node']}", "no-route")
    assert f"dev {wrong}" in v["detail"], v


def test_no_route_back(lab):
    db, client = db_and_client(lab)
    with restored(nodes(lab)[db["node"]]["netns"]) as ns:
        ns.run(["ip", "route", "del", nodes(lab)[client["node"]]["subnet"]], check=True)
        ns.run(["ip", "route", "del", "default"], check=True)
        r = trace(lab, "--from", f"pod/{client['name']}", "--to", f"pod/{db['name']}:8080", "--no-kernel")
    v = verdict(r, "no-route", f"node/{db['node']}", "no-route")
    assert "reply" in v["detail"]


# -- rules ----------------------------------------------------------------------------------
def test_an_iptables_drop_not_podnets_with_the_kernels_reason(lab):
    db, client = db_and_client(lab)
    with restored(nodes(lab)[db["node"]]["netns"]) as ns:
        ns.run(["iptables", "-I", "FORWARD", "-d", db["ip"], "-j", "DROP"], check=True)
        try:
            r = trace(lab, "--from", f"pod/{client['name']}", "--to", f"pod/{db['name']}:8080")
        finally:
            ns.run(["iptables", "-D", "FORWARD", "-d", db["ip"], "-j", "DROP"])
    v = verdict(r, "dropped", f"node/{db['node']}", "rule-drop")
    assert "FORWARD" in v["detail"] and db["ip"] in v["rule"]
    kernel_says(r, "NETFILTER_DROP", f"node/{db['node']}")


def test_an_nftables_drop_in_a_table_of_its_own(lab):
    db, client = db_and_client(lab)
    ns = Namespace(nodes(lab)[client["node"]]["netns"])
    rule = f"ip daddr {db['ip']} drop"
    table = f"table inet fault {{ chain filter_fault {{ type filter hook forward priority 10; {rule}; }}; }}"
    ns.run(["nft", "-f", "-"], input=table, check=True)
    try:
        r = trace(lab, "--from", f"pod/{client['name']}", "--to", f"pod/{db['name']}:8080", "--no-kernel")
    finally:
        ns.run(["nft", "delete", "table", "inet", "fault"])
    v = verdict(r, "dropped", f"node/{client['node']}", "rule-drop")
    assert "drop" in v["rule"] and db["ip"] in v["rule"]


def test_a_reject_names_the_rule(lab):
    db, client = db_and_client(lab)
    ns = Namespace(nodes(lab)[db["node"]]["netns"])
    rule = ["FORWARD", "-d", db["ip"], "-p", "tcp", "-j", "REJECT", "--reject-with", "tcp-reset"]
    ns.run(["iptables", "-I", *rule], check=True)
    try:
        r = trace(lab, "--from", f"pod/{client['name']}", "--to", f"pod/{db['name']}:8080", "--no-kernel")
    finally:
        ns.run(["iptables", "-D", *rule])
    v = verdict(r, "rejected", f"node/{db['node']}", "rule-reject")
    assert "reject" in v["rule"].lower()  # iptables' -j REJECT, or nft's spelling of it


# -- the kernel's own filters ---------------------------------------------------------------
def test_rp_filter_with_the_kernels_reason(lab):
    db, client = db_and_client(lab)
    node = nodes(lab)[db["node"]]
    with restored(node["netns"]) as ns:
        # the way back to the client's pods now leaves by a pod's veth, not by eth0
        ns.run(["ip", "route", "replace", nodes(lab)[client["node"]]["subnet"], "dev", host_veth(lab, db)], check=True)
        ns.run(["sysctl", "-q", "-w", "net.ipv4.conf.all.rp_filter=1", "net.ipv4.conf.eth0.rp_filter=1"], check=True)
        r = trace(lab, "--from", f"pod/{client['name']}", "--to", f"pod/{db['name']}:8080")
    v = verdict(r, None, f"node/{db['node']}", "rp-filter")
    assert v["ifname"] == "eth0"
    kernel_says(r, "IP_RPFILTER", f"node/{db['node']}")


def test_martian_source(lab):
    db, client = db_and_client(lab)
    with restored(nodes(lab)[db["node"]]["netns"]) as ns:
        ns.run(["ip", "addr", "add", f"{client['ip']}/32", "dev", "lo"], check=True)
        try:
            r = trace(lab, "--from", f"pod/{client['name']}", "--to", f"pod/{db['name']}:8080")
        finally:
            ns.run(["ip", "addr", "del", f"{client['ip']}/32", "dev", "lo"])
    verdict(r, None, f"node/{db['node']}", "martian-source")


def test_unresolved_neighbour(lab):
    db, client = db_and_client(lab)
    node = Namespace(nodes(lab)[db["node"]]["netns"])
    pod = Namespace(db["netns"])
    veth = host_veth(lab, db)
    # the pod stops answering ARP (its own permanent entry for its gateway stays untouched)
    pod.run(
        ["nft", "-f", "-"],
        input="table arp fault { chain in { type filter hook input priority 0; drop; }; }",
        check=True,
    )
    try:
        node.run(["ip", "neigh", "del", db["ip"], "dev", veth])
        r = trace(lab, "--from", f"pod/{client['name']}", "--to", f"pod/{db['name']}:8080", "--no-kernel")
    finally:
        pod.run(["nft", "delete", "table", "arp", "fault"])
        node.run(["ip", "neigh", "del", db["ip"], "dev", veth])
    v = verdict(r, "unreachable", f"node/{db['node']}", "neighbour-unresolved")
    assert db["ip"] in v["detail"] and v["ifname"] == veth


def test_packet_larger_than_the_path_mtu_with_the_kernels_reason(lab):
    db, client = db_and_client(lab)
    with restored(nodes(lab)[client["node"]]["netns"]) as ns:
        ns.run(["ip", "link", "set", "eth0", "mtu", "1200"], check=True)
        r = trace(lab, "--from", f"pod/{client['name']}", "--to", f"pod/{db['name']}:8080", "--size", "1400")
    v = verdict(r, "unreachable", f"node/{client['node']}", "mtu")
    assert v["mtu"] == 1200
    kernel_says(r, "PKT_TOO_BIG", f"node/{client['node']}")


# -- Services, NodePorts, ports -------------------------------------------------------------
def test_service_without_endpoints(lab):
    _, client = db_and_client(lab)
    r = trace(lab, "--from", f"pod/{client['name']}", "--to", "svc/none:80", "--no-kernel")
    v = r["verdict"]
    assert v["cause"] == "no-endpoints" and v["where"] == f"node/{client['node']}", v


def test_nodeport_not_open_on_that_node(lab):
    db, client = db_and_client(lab)
    r = trace(lab, "--from", f"pod/{client['name']}", "--to", f"node/{db['node']}:30999", "--no-kernel")
    v = verdict(r, "refused", f"node/{db['node']}", "nodeport-closed")
    node_port = next(p["nodePort"] for s in status(lab)["services"] if s["name"] == "db" for p in s["ports"])
    assert str(node_port) in v["detail"]
    r = trace(lab, "--from", f"pod/{client['name']}", "--to", f"node/{db['node']}:{node_port}", "--no-kernel")
    assert r["verdict"]["result"] == "delivered", r["verdict"]


@pytest.mark.parametrize("proto", ["tcp", "udp"])
def test_port_nobody_listens_on(lab, proto):
    db, client = db_and_client(lab)
    r = trace(lab, "--from", f"pod/{client['name']}", "--to", f"pod/{db['name']}:9999", "--proto", proto, "--no-kernel")
    verdict(r, "refused", f"pod/{db['name']}", "port-closed")


# -- probe ----------------------------------------------------------------------------------
def test_probe_marks_each_red_cell_with_the_cause_trace_names(lab, tmp_path):
    db, client = db_and_client(lab)
    png = tmp_path / "matrix.png"
    rule = ["FORWARD", "-d", db["ip"], "-j", "DROP"]
    ns = Namespace(nodes(lab)[db["node"]]["netns"])
    ns.run(["iptables", "-I", *rule], check=True)
    try:
        p = subprocess.run(
            [PODNET, "probe", "--lab", lab, "--from", f"pod/{client['name']}", "--to", f"pod/{db['name']}"]
            + ["--to", f"pod/{client['name']}", "-o", "json", "--png", str(png)],
            capture_output=True,
            text=True,
            timeout=240,
        )
    finally:
        ns.run(["iptables", "-D", *rule])
    assert p.returncode == 1, p.stderr
    cells = {c["target"]: c for c in json.loads(p.stdout)["cells"]}
    red = cells[f"pod/{db['name']}"]
    assert red["failed"] and (red["cause"], red["where"]) == ("rule-drop", f"node/{db['node']}"), red
    assert cells[f"pod/{client['name']}"]["ok"]
    no_leftovers(lab)
    from PIL import Image

    with Image.open(png) as img:
        assert img.format == "PNG"
