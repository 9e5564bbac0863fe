"""Is there a route? The kernel's own answer (`ip route get` as a forwarded packet), checked
against what host-gw routing promises: a pod subnet of node X is reached through X's
address, and a pod on this node through its own veth."""

from __future__ import annotations

import ipaddress
import json
import subprocess
from dataclasses import dataclass

from podnet.debug.topology import Cluster, NodeInfo


@dataclass(frozen=True)
class RouteCheck:
    node: str
    dst: str
    ok: bool
    route: str  # the route the kernel chose, or its error
    problem: str  # why this is no route for the cluster ("" when ok)
    error: bool = False  # the kernel refused to route it at all (route is its error)


def route_get(netns: str | None, dst: str, src: str | None, iif: str | None) -> tuple[dict | None, str]:
    args = ["ip", "-j", *(["-n", netns] if netns else []), "route", "get", dst]
    if src and iif:
        args += ["from", src, "iif", iif]
    r = subprocess.run(args, capture_output=True, text=True)
    if r.returncode != 0:
        return None, r.stderr.strip().removeprefix("RTNETLINK answers: ")
    routes = json.loads(r.stdout or "[]")
    return (routes[0] if routes else None), ""


def describe(route: dict) -> str:
    parts = [route.get("type", "unicast") if route.get("type") not in (None, "unicast") else "", route.get("dst", "")]
    if route.get("gateway"):
        parts.append(f"via {route['gateway']}")
    if route.get("dev"):
        parts.append(f"dev {route['dev']}")
    return " ".join(p for p in parts if p)


def check(cluster: Cluster, node: NodeInfo, dst: str, src: str | None, iif: str | None) -> RouteCheck:
    route, error = route_get(node.netns, dst, src, iif)
    if route is None:
        low = error.lower()
        back, _ = route_get(node.netns, src, None, None) if src else (None, "")
        # EXDEV is fib_validate_source's rp_filter verdict; `ip route get` also answers EINVAL
        # for it on some kernels, so a strict rp_filter with the way back by another link decides
        strict = src and iif and rp_filter(node.netns, iif) and back and back.get("dev") != iif
        if "cross-device" in low or ("invalid argument" in low and strict):
            problem = (
                f"reverse-path filtering (rp_filter) on node {node.name} drops packets from {src} arriving on {iif}: "
                f"the route back leaves by `{describe(back) if back else '?'}`"
            )
        elif "invalid argument" in low and src:  # EINVAL: a source the node may not receive from
            problem = f"node {node.name} takes {src} arriving on {iif} for a martian source ({error})"
        else:
            problem = f"no route on node {node.name} to {dst} ({error})"
        return RouteCheck(node.name, dst, False, error, problem, error=True)
    chosen = describe(route)
    if route.get("type") in ("unreachable", "prohibit", "blackhole"):
        return RouteCheck(node.name, dst, False, chosen, f"no route on node {node.name} to {dst} ({route['type']})")
    owner = owner_of(cluster, dst)
    if owner is None:
        return RouteCheck(node.name, dst, True, chosen, "")
    if owner.name == node.name:
        pod = cluster.pod_by_ip(dst)
        if pod and route.get("dev") != pod.host_veth:
            return RouteCheck(
                node.name, dst, False, chosen, f"no route on node {node.name} to its pod {pod.name} ({dst}): {chosen}"
            )
        return RouteCheck(node.name, dst, True, chosen, "")
    if route.get("gateway") != owner.ip:
        return RouteCheck(
            node.name,
            dst,
            False,
            chosen,
            f"no route on node {node.name} to {owner.subnet} (node {owner.name}'s pods): "
            f"the packet for {dst} took `{chosen}` instead of via {owner.ip}",
        )
    return RouteCheck(node.name, dst, True, chosen, "")


def owner_of(cluster: Cluster, ip: str) -> NodeInfo | None:
    addr = ipaddress.ip_address(ip)
    return next((n for n in cluster.nodes if addr in ipaddress.ip_network(n.subnet)), None)


def link_mtu(netns: str | None, dev: str) -> int | None:
    args = ["ip", "-j", *(["-n", netns] if netns else []), "link", "show", "dev", dev]
    r = subprocess.run(args, capture_output=True, text=True)
    links = json.loads(r.stdout or "[]") if r.returncode == 0 else []
    return links[0].get("mtu") if links else None


def table(netns: str | None) -> str:
    """The namespace's main routing table, one route after the other: what is there instead."""
    args = ["ip", "-j", *(["-n", netns] if netns else []), "route", "show"]
    r = subprocess.run(args, capture_output=True, text=True)
    found = json.loads(r.stdout or "[]") if r.returncode == 0 else []
    return "; ".join(describe(x) for x in found)


def neighbours(netns: str | None, address: str, dev: str) -> list[dict]:
    args = ["ip", "-j", *(["-n", netns] if netns else []), "neigh", "show", "to", address, "dev", dev]
    r = subprocess.run(args, capture_output=True, text=True)
    return json.loads(r.stdout or "[]") if r.returncode == 0 else []


def rp_filter(netns: str | None, dev: str) -> int:
    """The rp_filter in force on dev: the kernel uses the larger of `all` and the device's."""
    import netns as nsmod

    values = []
    for name in ("all", dev):
        try:
            with nsmod.entered(netns), open(f"/proc/sys/net/ipv4/conf/{name}/rp_filter") as f:
                values.append(int(f.read().strip() or 0))
        except (OSError, ValueError):
            values.append(0)
    return max(values)
