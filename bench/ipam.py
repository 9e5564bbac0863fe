"""IPAM allocation speed per store backend, with 1 and 8 concurrent clients
(processes, or threads of one process with --threads).

Workloads, each against a baseline measured in the same run on the same store:
  clusterip  ClusterIPAllocator.allocate() from a /12 (a shared store, no lock);
  pod-ip     AddressPool.allocate() from a node's /24, as podnet-ipam does per pod ADD: each
             client is a node with its own subnet (8 clients = 8 nodes sharing one store),
             with pod churn: each deletes (untimed) its pod of LIVE_PODS ADDs ago, so a node
             holds about LIVE_PODS pods, as a busy kubelet node does;
  pod-ip-1node  the same, but all clients ADD on one node at once (one pool; on etcd the
             node's lock queues them, as podnet-ipam does);
  baseline   one bare claim of a fresh key (Store.reserve): the floor of any allocation.
Reports allocations/s (all clients together), p50/p99 latency in ms, and the ratio of the
p50 to the baseline's p50. Bars (issue 3): local directory p99 < 5 ms; etcd p99 < 20 ms.

    python -m bench.ipam [--count 800] [--threads] [--json]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import queue
import statistics
import sys
import tempfile
import threading
import time
import uuid

from ipam.clusterip import ClusterIPAllocator
from ipam.config import parse_ipam
from ipam.etcd import EtcdStore
from ipam.node_lock import NodeLockedStore
from ipam.pool import AddressPool, owner_key
from ipam.store_url import open_store
from tests.support.etcd_server import EtcdServer

BARS_MS = {"file": 5.0, "etcd": 20.0}
LIVE_PODS = 110  # kubelet's default --max-pods
LOCK_ROOT = ""  # set by run(): node lock directories (forked clients inherit it)


def _untimed(i: int) -> None:
    pass


def _workload(kind: str, url: str, clients: int, client: int):
    """(one allocation, untimed work after it), fresh for each client (its own connection)."""
    store = open_store(url)
    if kind == "clusterip":
        alloc = ClusterIPAllocator(store, ["10.96.0.0/12"])
        return (lambda i: alloc.allocate(owner=f"svc-c{client}-{i}")), _untimed
    if kind.startswith("pod-ip"):
        node = 0 if kind == "pod-ip-1node" else client
        subnet = f"10.240.{node}.0/24"
        ranges = parse_ipam({"ranges": [[{"subnet": subnet}]]}, "bench").range_sets
        # As podnet-ipam: the pool's place in the store, and a lock on the node.
        pool_store = store.child("pods").child(subnet)
        if isinstance(pool_store, EtcdStore):
            pool_store = NodeLockedStore(pool_store, os.path.join(LOCK_ROOT, url.rsplit("/", 1)[1], str(node)))
        pool = AddressPool(pool_store, ranges)
        keep = max(LIVE_PODS // clients, 1) if kind == "pod-ip-1node" else LIVE_PODS

        def owner(i: int) -> str:
            return owner_key(f"ctr-c{client}-{i}", "eth0")

        return (lambda i: pool.allocate(owner(i))), (lambda i: pool.release(owner(i - keep)))
    claims = store.child("baseline")
    return (lambda i: claims.reserve(f"key-c{client}-{i}", "bench")), _untimed


def _client(kind: str, url: str, clients: int, client: int, count: int, barrier, out) -> None:
    one, after = _workload(kind, url, clients, client)
    one(-1)  # connect and warm up outside the measurement
    barrier.wait()
    latencies = []
    for i in range(count):
        t = time.perf_counter()
        one(i)
        latencies.append(time.perf_counter() - t)
        after(i)
    out.put((latencies, time.perf_counter()))


def measure(kind: str, url: str, clients: int, count: int, as_threads: bool = False) -> dict:
    """Clients as processes (separate machines or plugin executions) or as threads of one
    process (podnet's warm cni-server, a controller with workers)."""
    if as_threads:
        barrier, out = threading.Barrier(clients + 1), queue.Queue()
        procs = [
            threading.Thread(target=_client, args=(kind, url, clients, i, count, barrier, out)) for i in range(clients)
        ]
    else:
        ctx = multiprocessing.get_context("fork")
        barrier, out = ctx.Barrier(clients + 1), ctx.Queue()
        procs = [ctx.Process(target=_client, args=(kind, url, clients, i, count, barrier, out)) for i in range(clients)]
    for p in procs:
        p.start()
    barrier.wait()
    start = time.perf_counter()
    results = [out.get(timeout=300) for _ in procs]
    for p in procs:
        p.join()
    latencies = sorted(x for lat, _ in results for x in lat)
    wall = max(end for _, end in results) - start  # includes pod-ip's untimed deletes
    return {
        "workload": kind,
        "clients": f"{clients} {'threads' if as_threads else 'processes'}" if clients > 1 else "1",
        "allocations": len(latencies),
        "per_s": len(latencies) / wall,
        "p50_ms": statistics.median(latencies) * 1000,
        "p99_ms": latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000,
    }


def run(count: int, as_threads: bool) -> list[dict]:
    global LOCK_ROOT
    rows = []
    with tempfile.TemporaryDirectory(prefix="podnet-bench-ipam-") as work:
        LOCK_ROOT = os.path.join(work, "locks")
        etcd = EtcdServer(os.path.join(work, "etcd"))
        etcd.start()
        try:
            backends = {"file": f"file:{work}/store", "etcd": f"etcd://127.0.0.1:{etcd.client_port}/bench"}
            for backend, base_url in backends.items():
                for clients in (1, 8):
                    per_client = max(count // clients, 20)
                    # Each measurement starts from an empty store: no run sees another's claims.
                    measured = {
                        kind: measure(kind, f"{base_url}-{uuid.uuid4().hex[:8]}", clients, per_client, as_threads)
                        for kind in ("baseline", "clusterip", "pod-ip") + (("pod-ip-1node",) if clients > 1 else ())
                    }
                    base = measured["baseline"]["p50_ms"]
                    for row in measured.values():
                        row.update(backend=backend, ratio_p50=row["p50_ms"] / base)
                        row["bar_p99_ms"] = BARS_MS[backend] if row["workload"] != "baseline" else None
                        rows.append(row)
        finally:
            etcd.stop()
    return rows


def table(rows: list[dict]) -> str:
    lines = [
        "| backend | workload | clients | allocs | allocs/s | p50 ms | p99 ms | p50 / baseline | p99 bar |",
        "|---|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        bar = (
            ""
            if r["bar_p99_ms"] is None
            else f"< {r['bar_p99_ms']:g} ms: {'ok' if r['p99_ms'] < r['bar_p99_ms'] else 'MISSED'}"
        )
        lines.append(
            f"| {r['backend']} | {r['workload']} | {r['clients']} | {r['allocations']} | {r['per_s']:.0f} | "
            f"{r['p50_ms']:.2f} | {r['p99_ms']:.2f} | {r['ratio_p50']:.2f} | {bar} |"
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=800, help="allocations per measurement (split over clients)")
    parser.add_argument("--json", action="store_true", help="print the rows as JSON")
    parser.add_argument("--threads", action="store_true", help="concurrent clients as threads of one process")
    args = parser.parse_args()
    rows = run(args.count, args.threads)
    print(json.dumps(rows, indent=2) if args.json else table(rows))
    missed = [r for r in rows if r["bar_p99_ms"] is not None and r["p99_ms"] >= r["bar_p99_ms"]]
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
