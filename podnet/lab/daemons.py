"""The daemons every lab node runs, kept running by the lab controller: a warm
`podnet cni-server` (so each pod's plugin executable hands its work to a warm process) and
a `podnet-proxy` (the node's kube-proxy)."""

from __future__ import annotations

import http.client
import json
import os
import shutil
import subprocess
import sys
import time

from podnet.lab.node import Namespace
from podnet.lab.spec import LabSpec
from podnet.lab.state import LabFiles

RESTART_EVERY = 2.0  # a daemon that keeps failing is started again at most this often
HEALTHZ_PORT = 10256  # podnet-proxy's --healthz-bind-address default, kube-proxy's


def log(msg: str) -> None:
    print(f"{time.strftime('%H:%M:%S')} {msg}", flush=True)


class NodeDaemons:
    def __init__(self, files: LabFiles, nodes: dict[str, dict], started: float):
        self.files = files
        self.nodes = nodes
        self.started = started
        self.procs: dict[tuple[str, str], subprocess.Popen] = {}  # (what, node) -> process
        self.last_start: dict[tuple[str, str], float] = {}
        self.proxy_bin = proxy_binary()
        self.podnet_bin = os.path.join(os.path.dirname(sys.executable), "podnet")
        self.proxies_since = float("inf")  # since when every node's proxy has synced
        self.last_health = 0.0

    def running(self, what: str, node: str) -> bool:
        proc = self.procs.get((what, node))
        return proc is not None and proc.poll() is None

    def keep_running(self, key: tuple[str, str], node: dict, args: list[str], now: float) -> bool:
        """Start a node daemon, and start it again when it exits. True when one started."""
        proc = self.procs.get(key)
        if proc is not None and proc.poll() is None:
            return False
        if proc is not None:
            log(f"{key[0]} on {key[1]} exited with {proc.returncode}; restarting")
        if now - self.last_start.get(key, -RESTART_EVERY) < RESTART_EVERY:
            return False
        with open(self.files.path(f"{key[0]}-{key[1]}.log"), "a") as out:
            self.procs[key] = Namespace(node["netns"]).popen(
                args, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
            )
        self.last_start[key] = now
        return True

    def cni_servers(self, now: float) -> bool:
        """The plugin executables are still executed per pod with the CNI protocol; they hand
        the work to this warm server instead of paying an interpreter's imports each time.
        Abstract sockets belong to a network namespace: each node's plugins reach their own."""
        if not os.access(self.podnet_bin, os.X_OK):
            return False
        started = False
        for name, node in self.nodes.items():
            started |= self.keep_running(("cni-server", name), node, [self.podnet_bin, "cni-server"], now)
        return started

    def proxies(self, now: float, spec: LabSpec, first_pods_pending: bool) -> bool:
        if self.proxy_bin is None or not spec.services:
            # nothing will program endpoints (or none exist): readiness is all there is
            self.proxies_since = min(self.proxies_since, self.started)
            if self.proxy_bin is None:
                return False
        if first_pods_pending and not any(k[0] == "proxy" for k in self.procs) and now - self.started < 60:
            # While the first pods come up, proxies would resync once per batch of new
            # endpoints; started afterwards, each programs everything in one sync.
            return False
        started = False
        for name, node in self.nodes.items():
            args = [
                self.proxy_bin,
                "--objects-dir", self.files.objects_dir,
                "--hostname-override", name,
                "--node-ip", node["ip"],
                "--cluster-cidr", spec.network.cluster_cidr,
                "--proxy-mode", spec.network.proxy_mode,
                # a lab's endpoints change in bursts a person watches: program them quickly
                "--iptables-min-sync-period", "200ms",
            ]  # fmt: skip
            started |= self.keep_running(("proxy", name), node, args, now)
        if self.proxies_since == float("inf") and now - self.last_health >= 0.2:
            self.last_health = now
            if all(proxy_synced(node["ip"]) for node in self.nodes.values()):
                self.proxies_since = now
                log("every node's podnet-proxy has synced")
        return started

    def state(self, node: str) -> dict[str, str]:
        proxy = "not installed" if self.proxy_bin is None else "running" if self.running("proxy", node) else "down"
        return {"proxy": proxy, "cniServer": "running" if self.running("cni-server", node) else "down"}


def proxy_synced(node_ip: str) -> bool:
    """podnet-proxy's /healthz (kube-proxy's, on the node's address) reports a first sync."""
    try:
        conn = http.client.HTTPConnection(node_ip, HEALTHZ_PORT, timeout=0.3)
        conn.request("GET", "/healthz")
        resp = conn.getresponse()
        body = json.loads(resp.read() or b"{}")
        conn.close()
    except (OSError, ValueError, http.client.HTTPException):
        return False
    return resp.status == 200 and not str(body.get("lastUpdated", "1970")).startswith("1970")


def proxy_binary() -> str | None:
    for path in (
        os.path.join(os.path.dirname(sys.executable), "podnet-proxy"),
        os.path.join(os.path.dirname(os.path.realpath(sys.executable)), "podnet-proxy"),
    ):
        if os.access(path, os.X_OK):
            return path
    return shutil.which("podnet-proxy")
