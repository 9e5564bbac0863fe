"""Lab speed: `lab up` of 300 pods on 3 nodes and 1,000 pods on 10 nodes (ready: serving
through their Service), `lab down`, the time from a pod's death to its replacement answering
through its Service, and the memory of the whole lab (controller, etcd, agents, the pods'
workload processes: PSS and RSS from /proc/PID/smaps_rollup) per pod.

Baseline, measured in the same run: the kernel floor for the same number of pods -- one
`ip -batch` that makes the namespaces and a veth pair into each (no addresses, no routes, no
processes). Bars (issue 16): 300 pods up in <= 6 s, 1,000 in <= 20 s, 1,000 down in <= 3 s.
Mininet (issue 16, not run here): 300 bare hosts up 6.5 s, down 14 s.

    python -m bench.lab            # 300/3 and 1000/10
    python -m bench.lab 300/3      # PODS/NODES
"""

from __future__ import annotations

import compileall
import contextlib
import json
import os
import signal
import sys
import time
import uuid

from podnet.lab import names, net, pids, spec
from podnet.lab.node import Namespace, ip_batch
from podnet.lab.state import LabFiles


def bench_spec(pods: int, nodes: int = 3) -> spec.LabSpec:
    data = {
        "name": f"b{uuid.uuid4().hex[:6]}",
        "nodes": [f"node{i + 1}" for i in range(nodes)],
        "network": {"nodeSubnetSize": 22},
        "deployments": [
            {"name": "web", "replicas": pods - 1, "workload": {"kind": "http", "port": 8080}},
            {"name": "probe", "replicas": 1, "workload": {"kind": "http", "port": 8080}},
        ],
        "services": [
            {"name": "web", "selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 8080}]},
            {"name": "probe", "selector": {"app": "probe"}, "ports": [{"port": 80, "targetPort": 8080}]},
        ],
    }
    return spec.parse(data)


def compile_packages() -> None:
    """Bytecode for podnet's packages, as an installed package has it (pip compiles at install):
    each agent is a fresh interpreter, and with PYTHONDONTWRITEBYTECODE (or a read-only
    checkout) an editable install would compile every module again in each of them."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    for pkg in ("cluster", "cni", "ipam", "netns", "podnet", "policy", "proxy", "safeload"):
        compileall.compile_dir(os.path.join(root, pkg), quiet=1)


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


def current_probe(files: LabFiles, timeout: float = 60) -> tuple[dict, dict, int]:
    """The status and the probe pod, once it runs with a process (status.json may still name
    the one killed last time, or its replacement before it has a pid)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        st = files.read_status()
        probe = next((p for p in st["pods"] if p["deployment"] == "probe" and p["phase"] == "Running"), None)
        started = pids.start_time(probe["pid"]) if probe is not None and probe["pid"] else None
        if probe is not None and started is not None:
            return st, probe, started
        time.sleep(0.05)
    raise RuntimeError("no running probe pod")


def death_to_serving(lab: str) -> float:
    files = LabFiles(lab)
    st, probe, started = current_probe(files)
    cluster_ip = next(s["clusterIP"] for s in st["services"] if s["name"] == "probe")
    node = st["nodes"][1]["netns"]
    t0 = time.perf_counter()
    # by pid and start time: a pid that already went (and was perhaps reused) is never hit
    if not pids.send(probe["pid"], started, signal.SIGKILL):
        raise RuntimeError(f"probe pod {probe['name']} went before it was killed")
    while time.perf_counter() - t0 < 60:
        served = ask(node, cluster_ip)
        if served and served != probe["name"]:
            return time.perf_counter() - t0
    raise RuntimeError("replacement never served")


def memory(lab: str) -> dict[str, dict[str, float]]:
    """PSS and RSS (MiB) and count of the lab's processes, by kind: every process in one of
    the lab's namespaces (the controller and etcd in the lab's, agents in the nodes', workloads
    in the pods')."""
    inodes = {}
    for name in names.list_netns():
        if names.is_lab_netns(lab, name):
            with contextlib.suppress(OSError):
                inodes[os.stat(os.path.join(names.NETNS_DIR, name)).st_ino] = name
    out: dict[str, dict[str, float]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            where = inodes.get(os.stat(f"/proc/{entry}/ns/net").st_ino)
            if where is None:
                continue
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmd = f.read()
            with open(f"/proc/{entry}/smaps_rollup") as f:
                fields = {line.split(":")[0]: int(line.split()[1]) for line in f if line.split()[-1] == "kB"}
        except OSError:
            continue
        if ".pod." in where:
            kind = "pods"
        elif b"etcd" in cmd.split(b"\0")[0]:
            kind = "etcd"
        elif b"agent" in cmd:
            kind = "agents"
        elif b"podnet.lab.controller" in cmd:
            kind = "controller"
        else:
            kind = "other"
        row = out.setdefault(kind, {"n": 0, "pss_mib": 0.0, "rss_mib": 0.0})
        row["n"] += 1
        row["pss_mib"] += fields.get("Pss", 0) / 1024
        row["rss_mib"] += fields.get("Rss", 0) / 1024
    return out


def one(pods: int, nodes: int) -> dict:
    s = bench_spec(pods, nodes)
    floor = kernel_floor(pods)
    lab = net.Lab(s, keep=True, progress=lambda *_: None)
    t0 = time.perf_counter()
    try:
        lab.up(wait=600)
        up = time.perf_counter() - t0
        mem = memory(s.name)
        deaths = [death_to_serving(s.name) for _ in range(3)]
    finally:
        t1 = time.perf_counter()
        phases: dict[str, float] = {}
        net.teardown(s.name, phases)
        down = time.perf_counter() - t1
    pss = sum(r["pss_mib"] for r in mem.values())
    return {
        "load": round(os.getloadavg()[0], 1),  # the machine is shared: say how busy it was
        "pods": pods,
        "nodes": nodes,
        "pss_per_pod_mib": round(pss / pods, 2),
        "memory": {k: {m: round(v, 1) for m, v in r.items()} for k, r in mem.items()},
        "up_s": round(up, 2),
        "floor_s": round(floor, 2),
        "up_vs_floor": round(up / floor, 1),
        "down_s": round(down, 2),
        "down_phases": {k: round(v, 3) for k, v in phases.items()},
        "death_to_serving_s": round(sorted(deaths)[1], 2),
    }


BARS = {300: 6.0, 1000: 20.0}  # pods -> seconds up (issue 16); 1,000 down in 3 s


def main() -> None:
    sizes = [tuple(int(x) for x in a.split("/")) for a in (sys.argv[1:] or ["300/3", "1000/10"])]
    compile_packages()
    rows = [one(pods, nodes) for pods, nodes in sizes]
    print(f"{'pods':>6} {'nodes':>5} {'lab up':>8} {'floor':>7} {'ratio':>6} {'lab down':>9} {'death->serving':>15}"
          f" {'PSS/pod':>8} {'load':>5}")  # fmt: skip
    for r in rows:
        print(
            f"{r['pods']:>6} {r['nodes']:>5} {r['up_s']:>7.2f}s {r['floor_s']:>6.2f}s {r['up_vs_floor']:>5.1f}x"
            f" {r['down_s']:>8.2f}s {r['death_to_serving_s']:>14.2f}s {r['pss_per_pod_mib']:>5.2f}MiB {r['load']:>5}"
        )
    for r in rows:
        mem = ", ".join(
            f"{k} {v['n']:.0f}: PSS {v['pss_mib']:.0f} MiB (RSS {v['rss_mib']:.0f})" for k, v in r["memory"].items()
        )
        print(f"memory, {r['pods']} pods: {mem}")
        print(f"lab down, {r['pods']} pods: " + ", ".join(f"{k} {v:.2f}s" for k, v in r["down_phases"].items()))
        if r["pods"] in BARS:
            ok = r["up_s"] <= BARS[r["pods"]]
            print(f"bar: {r['pods']} pods up in {r['up_s']}s (<= {BARS[r['pods']]:.0f} s: {'yes' if ok else 'NO'})")
        if r["pods"] >= 1000:
            print(f"bar: {r['pods']} pods down in {r['down_s']}s (<= 3 s: {'yes' if r['down_s'] <= 3 else 'NO'})")
    print(json.dumps(rows))


if __name__ == "__main__":
    main()
