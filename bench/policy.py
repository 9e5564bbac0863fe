"""The agent's NetworkPolicy sync, off the kernel and on it: a synthetic cluster of N pods on
`--nodes` nodes, P policies of the recipes' shapes (deny all to an app, allow from a label, from
a namespace, ipBlock with except, named port, egress to DNS); one node's rules worked out
(policy.model.node_rules) and rendered (policy.nft.render), then written into a namespace of
its own with one `nft -f`.

The baseline, in the same process: the same model without the per-sync memo of peers and
egress rules (what node_rules did before it); reported as a ratio.

    sudo .venv/bin/python -m bench.policy [--pods 1000] [--nodes 10] [--apps 50] [--repeat 5]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import time
import uuid

from cluster.source import ADDED, Event, ref_of
from policy import nft
from policy.cluster import ClusterView
from policy.model import PodRules, node_rules, pod_rules


def pod(i: int, nodes: int, apps: int) -> dict:
    ns = "default" if i % 3 else "team"
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": f"p{i}", "namespace": ns, "labels": {"app": f"app{i % apps}", "role": "x"}},
            "spec": {"nodeName": f"n{i % nodes}", "containers": [{"name": "c", "ports": [
                {"name": "http", "containerPort": 8080, "protocol": "TCP"}]}]},
            "status": {"phase": "Running", "podIP": f"10.244.{i // 250}.{i % 250 + 2}"}}  # fmt: skip


def policies(apps: int) -> list[dict]:
    out = []
    for a in range(apps):
        sel = {"matchLabels": {"app": f"app{a}"}}
        out.append({"metadata": {"name": f"deny-{a}"}, "spec": {"podSelector": sel, "ingress": []}})
        out.append({"metadata": {"name": f"allow-{a}"}, "spec": {"podSelector": sel, "ingress": [
            {"from": [{"podSelector": {"matchLabels": {"app": f"app{(a + 1) % apps}"}}},
                      {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "team"}}},
                      {"ipBlock": {"cidr": "10.0.0.0/8", "except": ["10.244.0.0/16"]}}],
             "ports": [{"port": "http"}, {"port": 9000, "endPort": 9100}]}]}})  # fmt: skip
    out.append({"metadata": {"name": "dns-only"}, "spec": {"podSelector": {"matchLabels": {"role": "x"}},
                "policyTypes": ["Egress"], "egress": [{"ports": [{"port": 53, "protocol": "UDP"}]},
                {"to": [{"podSelector": {}}], "ports": [{"port": "http"}]}]}})  # fmt: skip
    for p in out:
        p.update(apiVersion="networking.k8s.io/v1", kind="NetworkPolicy")
        p["metadata"]["namespace"] = "default"
    return out


def unmemoized(view: ClusterView, node: str) -> list[PodRules]:
    rules = [pod_rules(view.pods[k], view) for k in sorted(view.pods) if view.pods[k].node == node]
    return [r for r in rules if r.isolated]


def timed(fn, repeat: int) -> float:
    samples = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t0)
    return statistics.median(samples)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--pods", type=int, default=1000)
    p.add_argument("--nodes", type=int, default=10)
    p.add_argument("--apps", type=int, default=50)
    p.add_argument("--repeat", type=int, default=5)
    args = p.parse_args()
    objs = [pod(i, args.nodes, args.apps) for i in range(args.pods)] + policies(args.apps)
    view = ClusterView()
    view.apply([Event(ADDED, ref_of(o), o) for o in objs])
    rules = node_rules(view, "n0")
    assert rules == unmemoized(view, "n0"), "the memo changed what the model says"
    text = nft.render(rules)
    base = timed(lambda: unmemoized(view, "n0"), args.repeat)
    model = timed(lambda: node_rules(view, "n0"), args.repeat)
    render = timed(lambda: (nft.allow_rules.cache_clear(), nft.render(rules)), args.repeat)  # a cold cache
    name = f"pnbench-{uuid.uuid4().hex[:6]}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        write = timed(lambda: nft.apply(text, name), args.repeat)
    finally:
        subprocess.run(["ip", "netns", "del", name], check=True)
    print(f"{args.pods} pods on {args.nodes} nodes, {len(view.policies)} policies; node n0: {len(rules)} isolated "
          f"pods, {text.count(chr(10))} lines of nft")  # fmt: skip
    print(f"model (memo) {model * 1000:.1f} ms, baseline (no memo) {base * 1000:.1f} ms: {base / model:.1f}x")
    print(f"render {render * 1000:.1f} ms, nft -f {write * 1000:.1f} ms (median of {args.repeat})")


if __name__ == "__main__":
    main()
