"""A Service change written to etcd, until it is in the rules of every node's kernel.

10 node namespaces each run `podnet agent` (host-gw, iptables) against one etcd; each sample
writes one new Service (a fresh ClusterIP) through the etcd client and polls every node's
rules (iptables-save: a Service without endpoints is a filter-table REJECT) until the
ClusterIP is there. Reports p50 / p99 / max of the per-node latency (poll step 20 ms).

    sudo .venv/bin/python -m bench.agent [--nodes 10] [--samples 30]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import threading
import time

from cluster.registry import apply as put_objects
from cluster.registry import check
from tests.agent.nodes import PREFIX, Cluster
from tests.support import netns as nsmod


def service(i: int) -> dict:
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": f"bench-{i}", "namespace": "default"},
            "spec": {"clusterIP": f"10.96.{1 + i // 250}.{1 + i % 250}", "ports": [{"port": 80}]}}  # fmt: skip


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--nodes", type=int, default=10)
    p.add_argument("--samples", type=int, default=30)
    args = p.parse_args()
    made: list[nsmod.Namespace] = []

    def make(prefix: str = "pnt") -> nsmod.Namespace:
        made.append(nsmod.create(prefix))
        return made[-1]

    with tempfile.TemporaryDirectory() as work:
        c = None
        try:
            c = Cluster(make, work, nodes=args.nodes, backend="host-gw", ttl=30)
            for node in c.nodes:
                c.start_agent(node, wait=False)
            for node in c.nodes:
                c.wait_healthy(node, timeout=120)
            client = c.etcd.client()
            latencies: list[float] = []
            for i in range(args.samples):
                obj = service(i)
                ip = obj["spec"]["clusterIP"]
                written = time.monotonic()
                put_objects(client, PREFIX, check([(obj, "bench")], None))
                seen: dict[str, float] = {}

                def poll(node, ip=ip, seen=seen, written=written) -> None:
                    while time.monotonic() - written < 10:
                        if ip in node.ns.run("iptables-save").stdout:
                            seen[node.name] = time.monotonic() - written
                            return
                        time.sleep(0.02)

                threads = [threading.Thread(target=poll, args=(n,)) for n in c.nodes]
                for t in threads:
                    t.start()
                for t in threads:
                    t.join()
                latencies += [seen.get(n.name, float("inf")) for n in c.nodes]
                time.sleep(1.1)  # past the proxy's minimum sync interval: each change is measured alone
            q = statistics.quantiles(latencies, n=100)
            print(json.dumps({"nodes": args.nodes, "samples": len(latencies), "p50_s": round(q[49], 3),
                              "p99_s": round(q[98], 3), "max_s": round(max(latencies), 3)}))  # fmt: skip
        finally:
            if c is not None:
                c.close()
            for ns in reversed(made):
                nsmod.destroy(ns)


if __name__ == "__main__":
    main()
