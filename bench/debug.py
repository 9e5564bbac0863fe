"""Debugging speed and fidelity, each against a baseline measured in the same run and lab
(3 nodes, 24 pods, one Service):

- probe: the whole pods x (pods + Service) matrix, every connection in flight at once,
  against the same connections made one after the other (what a loop of curls does);
- trace: one `podnet trace` pod -> Service, end to end, against one HTTP request through
  the Service from the same pod (the cheapest check a person runs first);
- capture: packets captured by `podnet capture -w` from a burst of UDP packets on a pod's
  veth, against `tcpdump -w` capturing the same burst on the same interface at the same time.

    python -m bench.debug [--pods-per-node 8] [--burst 20000]
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid

from podnet.debug import probe, topology, trace
from podnet.lab import net, spec
from podnet.lab.node import Namespace

PODNET = os.path.join(os.path.dirname(sys.executable), "podnet")


def lab_spec(per_node: int) -> spec.LabSpec:
    data = {
        "name": f"bd{uuid.uuid4().hex[:6]}",
        "nodes": ["n1", "n2", "n3"],
        "network": {"underlayCIDR": "192.168.63.0/24", "clusterCIDR": "10.63.0.0/16", "serviceCIDR": "10.64.0.0/16"},
        "deployments": [{"name": "web", "replicas": 3 * per_node, "workload": {"kind": "http", "port": 8080}}],
        "services": [{"name": "web", "selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 8080}]}],
    }
    return dataclasses.replace(spec.parse(data))


def sequential(cluster, sources, targets, timeout: float = 2.0) -> int:
    ok = 0
    for src in sources:
        for t in targets:
            with probe.socket_in(src.netns) as sock:
                sock.settimeout(timeout)
                ok += sock.connect_ex((t.ip, t.port)) == 0
    return ok


def bench_probe(cluster) -> tuple[float, float, int]:
    sources = probe.pick_sources(cluster, ())
    targets = probe.pick_targets(cluster, ())
    par, seq = [], []
    for _ in range(3):
        t = time.perf_counter()
        m = probe.probe(cluster, sources, targets, 2.0)
        par.append(time.perf_counter() - t)
        assert not m.failures(), m.failures()
        t = time.perf_counter()
        assert sequential(cluster, sources, targets) == len(sources) * len(targets)
        seq.append(time.perf_counter() - t)
    return statistics.median(par), statistics.median(seq), len(sources) * len(targets)


def bench_broken_probe(cluster) -> tuple[float, float, int, int]:
    """Two pods per node, to each other, with node n3's routes removed: the failing pairs wait
    out the timeout, all at once in the matrix, one after the other in the baseline."""
    sources = [p for n in cluster.nodes for p in [q for q in cluster.pods if q.node == n.name][:2]]
    targets = probe.pick_targets(cluster, tuple(f"pod/{p.name}" for p in sources))
    broken = cluster.node("n3")
    ns = Namespace(broken.netns)
    others = [n for n in cluster.nodes if n is not broken]
    for n in others:
        ns.ip("route", "del", n.subnet)
    try:
        t = time.perf_counter()
        m = probe.probe(cluster, sources, targets, 0.5)
        par = time.perf_counter() - t
        t = time.perf_counter()
        sequential(cluster, sources, targets, 0.5)
        seq = time.perf_counter() - t
    finally:
        for n in others:
            ns.ip("route", "replace", n.subnet, "via", n.ip)
    return par, seq, len(sources) * len(targets), len(m.failures())


def bench_trace(cluster) -> tuple[float, float]:
    src = cluster.pods[0]
    svc = cluster.services[0]
    tr, base = [], []
    for _ in range(5):
        t = time.perf_counter()
        r = trace.trace(cluster, f"pod/{src.name}", "svc/web:80")
        tr.append(time.perf_counter() - t)
        assert r.verdict.result == "delivered", r.verdict
        t = time.perf_counter()
        Namespace(src.netns).run([sys.executable, "-m", "podnet.lab.client", svc.cluster_ip, "80"], check=True)
        base.append(time.perf_counter() - t)
    return statistics.median(tr), statistics.median(base)


BLAST = (
    "import socket,sys;s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM);a=(sys.argv[1],9);d=b'x'*64\n"
    "for _ in range(int(sys.argv[2])):\n s.sendto(d,a)"
)


def count(path: str) -> int:
    out = subprocess.run(["tcpdump", "-nr", path], capture_output=True, text=True).stdout
    return sum(1 for line in out.splitlines() if ".9: UDP" in line)


def bench_capture(cluster, burst: int) -> tuple[int, int]:
    src, dst = cluster.pods[0], cluster.pods[1]
    with tempfile.TemporaryDirectory(prefix="podnet-bench-") as d:
        ours, theirs = os.path.join(d, "podnet.pcap"), os.path.join(d, "tcpdump.pcap")
        cap = subprocess.Popen(
            [PODNET, "capture", "--lab", cluster.lab, f"pod/{src.name}", "--filter", "udp port 9", "-w", ours],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        dump = Namespace(src.node_netns).popen(
            ["tcpdump", "-i", src.host_veth, "-w", theirs, "-U", "udp port 9"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        cap.stderr.readline()
        time.sleep(1.0)  # tcpdump announces nothing we can wait for on a pipe reliably
        Namespace(src.netns).run([sys.executable, "-c", BLAST, dst.ip, str(burst)], check=True)
        time.sleep(2.0)
        for p in (cap, dump):
            p.terminate()
            p.wait(timeout=20)
        return count(ours), count(theirs)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--pods-per-node", type=int, default=8)
    ap.add_argument("--burst", type=int, default=20000)
    a = ap.parse_args()
    s = lab_spec(a.pods_per_node)
    try:
        net.Lab(s, keep=True, progress=lambda *_: None).up(wait=120)
        time.sleep(1.5)  # every node's proxy programs the Service
        cluster = topology.lab_cluster(s.name)
        par, seq, pairs = bench_probe(cluster)
        bpar, bseq, bpairs, bfailed = bench_broken_probe(cluster)
        tr, base = bench_trace(cluster)
        ours, theirs = bench_capture(cluster, a.burst)
    finally:
        net.teardown(s.name)
    socket.setdefaulttimeout(None)
    print(f"debug bench: lab of 3 nodes x {a.pods_per_node} pods, 1 Service")
    print(f"{'measure':<50} {'podnet':>10} {'baseline':>10} {'ratio':>7}")
    print(f"{f'probe matrix, {pairs} connections (s)':<50} {par:>10.3f} {seq:>10.3f} {par / seq:>7.2f}")
    label = f"probe, n3 without routes, {bpairs} pairs, {bfailed} fail (s)"
    print(f"{label:<50} {bpar:>10.3f} {bseq:>10.3f} {bpar / bseq:>7.2f}")
    print(f"{'trace pod -> Service, end to end (s)':<50} {tr:>10.3f} {base:>10.3f} {tr / base:>7.2f}")
    print(f"{f'capture of a {a.burst}-packet burst (packets)':<50} {ours:>10d} {theirs:>10d} {ours / theirs:>7.2f}")


if __name__ == "__main__":
    main()
