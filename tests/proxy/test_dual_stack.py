"""Dual stack with real packets: one podnet-proxy, both families' rules (ip and ip6 podnet /
iptables and ip6tables) from the same objects, in every mode the tracer tables cover.

    client 192.168.1.2 fd00::2 --- c0 192.168.1.1 fd00::1  NODE  p1 10.244.1.1 fd10:1::1 --- e1 10.244.1.2 fd10:1::2
                                                                 p9 10.244.9.1 fd10:9::1 --- pc 10.244.9.2 fd10:9::2
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import yaml

from tests.support.proxy_lab import HERE, PROXY

pytestmark = pytest.mark.integration

LINKS = {  # pod: (node side v4, v6, pod v4, v6)
    "e1": ("10.244.1.1", "fd10:1::1", "10.244.1.2", "fd10:1::2"),
    "pc": ("10.244.9.1", "fd10:9::1", "10.244.9.2", "fd10:9::2"),
}


@pytest.fixture(scope="module")
def lab():
    from tests.support import netns as nsmod

    made = []
    server = None

    def create(prefix: str):
        made.append(nsmod.create(prefix))
        return made[-1]

    try:
        node, client = create("pnds-node"), create("pnds-cli")
        pods = {name: create(f"pnds-{name}") for name in LINKS}
        _wire(nsmod, node, client, "c0", ("192.168.1.1", "fd00::1", "192.168.1.2", "fd00::2"))
        for i, (name, addrs) in enumerate(LINKS.items()):
            _wire(nsmod, node, pods[name], f"p{i}", addrs)
        for key in ("net.ipv4.ip_forward", "net.ipv6.conf.all.forwarding"):
            node.run("sysctl", "-q", "-w", f"{key}=1")
        for ns in made:
            ns.settle_ipv6()
        server = pods["e1"].popen(sys.executable, "-I", "-S", os.path.join(HERE, "echo_server.py"), "e1", "tcp:8080",
                                  "udp:5353", stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)  # fmt: skip
        assert server.stdout.readline().strip() == "ready"
        yield {"node": node, "client": client, **pods}
    finally:
        if server is not None:
            server.kill()
            server.wait()
        for ns in reversed(made):
            nsmod.destroy(ns)


def _wire(nsmod, node, other, node_if: str, addrs: tuple[str, str, str, str]) -> None:
    n4, n6, o4, o6 = addrs
    nsmod.sh("ip", "-n", node.name, "link", "add", node_if, "type", "veth", "peer", "name", "eth0", "netns", other.name)
    for ns, ifname, a4, a6 in ((node, node_if, n4, n6), (other, "eth0", o4, o6)):
        ns.ip("addr", "add", f"{a4}/24", "dev", ifname)
        ns.ip("-6", "addr", "add", f"{a6}/64", "dev", ifname, "nodad")  # usable at once
        ns.ip("link", "set", ifname, "up")
    other.ip("route", "add", "default", "via", n4)
    other.ip("-6", "route", "add", "default", "via", n6)


OBJECTS = [
    {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": "default"},
     "spec": {"type": "NodePort", "ipFamilyPolicy": "RequireDualStack", "clusterIP": "10.96.0.10",
              "clusterIPs": ["10.96.0.10", "fd30::10"],
              "ports": [{"name": "http", "port": 80, "nodePort": 30080},
                        {"name": "dns", "port": 53, "protocol": "UDP", "nodePort": 30053}]}},
    *[{"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
       "metadata": {"name": f"web-{fam.lower()}", "namespace": "default",
                    "labels": {"kubernetes.io/service-name": "web"}},
       "addressType": fam, "endpoints": [{"addresses": [ip], "nodeName": "node-a"}],
       "ports": [{"name": "http", "port": 8080}, {"name": "dns", "port": 5353, "protocol": "UDP"}]}
      for fam, ip in (("IPv4", "10.244.1.2"), ("IPv6", "fd10:1::2"))],
]  # fmt: skip


def probe(ns, proto: str, host: str, port: int, count: int = 2) -> list[dict]:
    out = ns.run(sys.executable, "-I", "-S", os.path.join(HERE, "probe.py"), proto, host, str(port), str(count),
                 "--timeout=2", timeout=60).stdout  # fmt: skip
    return json.loads(out)


@pytest.mark.parametrize("mode", ["iptables", "nftables"])
def test_one_daemon_programs_both_families(lab, mode, tmp_path):
    node = lab["node"]
    (tmp_path / "web.yaml").write_text(yaml.safe_dump_all(OBJECTS))
    args = [PROXY, "--objects-dir", str(tmp_path), "--hostname-override", "node-a", "--node-ip", "192.168.1.1",
            "--node-ip", "fd00::1", "--cluster-cidr", "10.244.0.0/16,fd10::/16", "--proxy-mode", mode]  # fmt: skip
    try:
        r = node.run(*args, "--once", check=False)
        assert r.returncode == 0, r.stderr
        for where, host, port in (("pc", "10.96.0.10", 80), ("pc", "fd30::10", 80), ("client", "192.168.1.1", 30080),
                                  ("client", "fd00::1", 30080)):  # fmt: skip
            results = probe(lab[where], "tcp", host, port)
            assert [x.get("name") for x in results] == ["e1", "e1"], (where, host, results)
        v6 = probe(lab["pc"], "udp", "fd30::10", 53)
        assert [x.get("name") for x in v6] == ["e1", "e1"], v6
        # the IPv6 pod keeps its source; the outside client over IPv6 is masqueraded (policy Cluster)
        seen = probe(lab["pc"], "tcp", "fd30::10", 80, 1)[0]["peer"]
        assert seen.startswith("[fd10:9::2]"), (seen, node.run("ip6tables-save", "-c", "-t", "nat").stdout)
        assert not probe(lab["client"], "tcp", "fd00::1", 30080, 1)[0]["peer"].startswith("[fd00::2]")
    finally:
        node.run(PROXY, "--cleanup", check=False)
    assert "PODNET" not in node.run("ip6tables-save").stdout
    assert "podnet" not in node.run("nft", "list", "tables").stdout
