"""Lab speed: `lab up` of 3 nodes x 30 and x 300 pods, `lab down`, and the time from a pod's
death to its replacement answering through its Service.

Baseline, measured in the same run: the kernel floor for the same number of pods -- one
`ip -batch` that makes the namespaces and a veth pair into each (no addresses, no routes, no
processes). Bar (issue 5): 300 pods up in under 60 s on a 2-core machine.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
import uuid

from podnet.lab import net, spec
from podnet.lab.node import Namespace, ip_batch
from podnet.lab.state import LabFiles


def bench_spec(per_node: int) -> spec.LabSpec:
    data = {
        "name": f"b{uuid.uuid4().hex[:6]}",
        "nodes": ["node1", "node2", "node3"],
        "network": {"nodeSubnetSize": 22},
        "deployments": [
            {"name": "web", "replicas": 3 * per_node - 1, "workload": {"kind": "http", "port": 8080}},
            {"name": "probe", "replicas": 1, "workload": {"kind": "http", "port": 8080}},
        ],
        "services": [
            {"name": "web", "selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 8080}]},
            {"name": "probe", "selector": {"app": "probe"}, "ports": [{"port": 80, "targetPort": 8080}]},
        ],
    }
    return spec.parse(data)


def kernel_floor(n: int) -> float:
    tag = uuid.uuid4().hex[:6]
    names = [f"podnet-bench{tag}.{i}" for i in range(n)]
    host = f"podnet-bench{tag}"
    t0 = time.perf_counter()
    ip_batch([f"netns add {host}", *(f"netns add {x}" for x in names)])
    ip_batch([f"link add v{i} type veth peer name eth0 netns {x}" for i, x in enumerate(names)], host)
    took = time.perf_counter() - t0
    ip_batch([f"netns del {x}" for x in [*names, host]], check=False)
    return took


def ask(netns: str, host: str) -> str | None:
    """One GET from inside `netns` (run in a child that entered the namespace)."""
    code = (
        "import http.client,sys\n"
        "try:\n c=http.client.HTTPConnection(sys.argv[1],80,timeout=0.5);c.request('GET','/');"
        "r=c.getresponse();r.read();print(r.getheader('X-Pod-Name'))\nexcept OSError: print('')"
    )
    return Namespace(netns).run([sys.executable, "-c", code, host]).out.strip() or None


def death_to_serving(lab: str) -> float:
    files = LabFiles(lab)
    st = files.read_status()
    probe = next(p for p in st["pods"] if p["deployment"] == "probe")
    cluster_ip = next(s["clusterIP"] for s in st["services"] if s["name"] == "probe")
    node = st["nodes"][1]["netns"]
    t0 = time.perf_counter()
    os.kill(probe["pid"], signal.SIGKILL)
    while time.perf_counter() - t0 < 60:
        served = ask(node, cluster_ip)
        if served and served != probe["name"]:
            return time.perf_counter() - t0
    raise RuntimeError("replacement never served")


def one(per_node: int) -> dict:
    s = bench_spec(per_node)
    pods = 3 * per_node
    floor = kernel_floor(pods)
    lab = net.Lab(s, keep=True, progress=lambda *_: None)
    t0 = time.perf_counter()
    try:
        lab.up(wait=600)
        up = time.perf_counter() - t0
        deaths = [death_to_serving(s.name) for _ in range(3)]
    finally:
        t1 = time.perf_counter()
        net.teardown(s.name)
        down = time.perf_counter() - t1
    return {
        "load": round(os.getloadavg()[0], 1),  # the machine is shared: say how busy it was
        "pods": pods,
        "up_s": round(up, 2),
        "floor_s": round(floor, 2),
        "up_vs_floor": round(up / floor, 1),
        "down_s": round(down, 2),
        "death_to_serving_s": round(sorted(deaths)[1], 2),
    }


def main() -> None:
    sizes = [int(x) for x in (sys.argv[1:] or ["30", "300"])]
    rows = [one(n) for n in sizes]
    print(f"{'pods':>6} {'lab up':>8} {'floor':>7} {'ratio':>6} {'lab down':>9} {'death->serving':>15} {'load':>5}")
    for r in rows:
        print(
            f"{r['pods']:>6} {r['up_s']:>7.2f}s {r['floor_s']:>6.2f}s {r['up_vs_floor']:>5.1f}x"
            f" {r['down_s']:>8.2f}s {r['death_to_serving_s']:>14.2f}s {r['load']:>5}"
        )
    big = [r for r in rows if r["pods"] >= 300]
    for r in big:
        print(f"bar: {r['pods']} pods up in {r['up_s']}s (< 60 s: {'yes' if r['up_s'] < 60 else 'NO'})")
    print(json.dumps(rows))


if __name__ == "__main__":
    main()
