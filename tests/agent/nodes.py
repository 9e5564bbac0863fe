"""A small cluster of "node" namespaces for agent tests: a hub namespace that is the
underlay (one or two bridges; with two it routes between them, as a router between two
subnets) and runs etcd, node namespaces on it each running `podnet agent`, and pods added
through the CNI protocol. Everything is made under unique names and removed by close()."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field

from cluster.etcd import EtcdClient
from tests.support import netns as nsmod
from tests.support.cni_runtime import Runtime
from tests.support.etcd_server import ETCD, free_port

PODNET = os.path.join(os.path.dirname(sys.executable), "podnet")
PREFIX = "/podnet-test"


class NamespacedEtcd:
    """etcd inside the hub namespace, listening on the hub's first underlay address."""

    def __init__(self, hub: nsmod.Namespace, host: str, workdir: str) -> None:
        self.hub, self.host = hub, host
        self.port, self.peer = free_port(), free_port()
        self.data_dir = os.path.join(workdir, "etcd")
        self.log_path = os.path.join(workdir, "etcd.log")
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"etcd://{self.host}:{self.port}{PREFIX}"

    def client(self) -> EtcdClient:
        return EtcdClient(self.host, self.port, netns=self.hub.name)

    def start(self) -> None:
        client, peer = f"http://{self.host}:{self.port}", f"http://127.0.0.1:{self.peer}"
        args = [
            ETCD,
            "--name=pn",
            f"--data-dir={self.data_dir}",
            f"--listen-client-urls={client}",
            f"--advertise-client-urls={client}",
            f"--listen-peer-urls={peer}",
            f"--initial-advertise-peer-urls={peer}",
            f"--initial-cluster=pn={peer}",
            "--log-level=error",
        ]
        with open(self.log_path, "ab") as log:
            self.proc = self.hub.popen(*args, stdout=log, stderr=log, start_new_session=True)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                with open(self.log_path, errors="replace") as f:
                    raise RuntimeError(f"etcd exited: {f.read()[-2000:]}")
            with contextlib.suppress(Exception):
                self.client().get_prefix("/health-check/")
                return
            time.sleep(0.1)
        raise RuntimeError("etcd did not start")

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        self.proc = None


@dataclass
class Node:
    name: str
    ns: nsmod.Namespace
    ip: str
    workdir: str
    proc: subprocess.Popen | None = None
    args: list[str] = field(default_factory=list)

    @property
    def conf_dir(self) -> str:
        return os.path.join(self.workdir, "net.d")

    def conflist(self) -> dict:
        with open(os.path.join(self.conf_dir, "10-podnet.conflist")) as f:
            return json.load(f)

    def healthz(self) -> tuple[int, dict]:
        r = self.ns.run("curl", "-s", "-o", "-", "-w", "\n%{http_code}", "http://127.0.0.1:10256/healthz", check=False)
        body, _, code = r.stdout.rpartition("\n")
        return int(code or 0), (json.loads(body) if body.strip().startswith("{") else {})

    def podnet_routes(self) -> list[str]:
        return sorted(line for line in self.ns.ip("route", "show", "proto", "151").splitlines() if line.strip())


class Cluster:
    def __init__(
        self,
        make_ns,
        workdir: str,
        nodes: int = 2,
        backend: str = "host-gw",
        split: bool = False,
        ttl: int = 6,
        proxy_mode: str = "iptables",
    ) -> None:
        self.make_ns, self.workdir = make_ns, workdir
        self.backend, self.ttl, self.proxy_mode = backend, ttl, proxy_mode
        self.hub = make_ns("pnt-hub")
        self.nets = ["192.168.77", "192.168.78"] if split else ["192.168.77"]
        for i, net in enumerate(self.nets):
            self.hub.ip("link", "add", f"br{i}", "type", "bridge")
            self.hub.ip("addr", "add", f"{net}.1/24", "dev", f"br{i}")
            self.hub.ip("link", "set", f"br{i}", "up")
        self.hub.run("sysctl", "-qw", "net.ipv4.ip_forward=1")
        self.etcd = NamespacedEtcd(self.hub, f"{self.nets[0]}.1", workdir)
        self.etcd.start()
        self.bin_dir = os.path.join(workdir, "bin")
        self.nodes: list[Node] = []
        for i in range(nodes):
            self.add_node(f"node{i + 1}", i % len(self.nets))
        self.pods: list[nsmod.Namespace] = []

    def add_node(self, name: str, net: int) -> Node:
        ns = self.make_ns("pnt-node")
        index = len(self.nodes)
        ip = f"{self.nets[net]}.{10 + index}"
        port = f"p{index}-{ns.name[-6:]}"[:15]
        self.hub.ip("link", "add", port, "type", "veth", "peer", "name", "eth0", "netns", ns.name)
        self.hub.ip("link", "set", port, "master", f"br{net}", "up")
        ns.ip("addr", "add", f"{ip}/24", "dev", "eth0")
        ns.ip("link", "set", "eth0", "up")
        ns.ip("route", "add", "default", "via", f"{self.nets[net]}.1")
        ns.run("sysctl", "-qw", "net.ipv4.ip_forward=1")
        node = Node(name, ns, ip, os.path.join(self.workdir, name))
        os.makedirs(node.workdir, exist_ok=True)
        self.nodes.append(node)
        return node

    def start_agent(self, node: Node, wait: bool = True) -> None:
        node.args = [
            PODNET,
            "agent",
            "--node-name",
            node.name,
            "--node-ip",
            node.ip,
            "--store",
            self.etcd.url,
            "--backend",
            self.backend,
            "--proxy-mode",
            self.proxy_mode,
            "--objects",
            "etcd",
            "--cni-bin-dir",
            self.bin_dir,
            "--cni-conf-dir",
            node.conf_dir,
            "--cni-data-dir",
            os.path.join(node.workdir, "ipam"),
            "--lease-ttl",
            str(self.ttl),
            "--metrics-bind-address",
            "127.0.0.1:10249",
            "--healthz-bind-address",
            "127.0.0.1:10256",
        ]
        log = open(os.path.join(node.workdir, "agent.log"), "ab")  # noqa: SIM115 -- the child owns it
        node.proc = node.ns.popen(*node.args, stdout=log, stderr=log, start_new_session=True)
        log.close()
        if wait:
            self.wait_healthy(node)

    def wait_healthy(self, node: Node, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if node.proc is not None and node.proc.poll() is not None:
                raise AssertionError(f"agent {node.name} exited: {self.log(node)}")
            if node.healthz()[0] == 200:
                return
            time.sleep(0.2)
        raise AssertionError(f"agent {node.name} not healthy: {node.healthz()} {self.log(node)}")

    def log(self, node: Node) -> str:
        with open(os.path.join(node.workdir, "agent.log"), errors="replace") as f:
            return f.read()[-3000:]

    def kill_agent(self, node: Node, sig: int = signal.SIGKILL) -> None:
        if node.proc is not None and node.proc.poll() is None:
            os.kill(node.proc.pid, sig)
            try:
                node.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:  # a stuck shutdown is a bug, but must not leak the process
                node.proc.kill()
                node.proc.wait()
        node.proc = None

    def runtime(self, node: Node, cni_driver: str) -> Runtime:
        workdir = os.path.join(node.workdir, "runtime")
        os.makedirs(workdir, exist_ok=True)
        return Runtime(node.ns, f"{self.bin_dir}:/usr/lib/cni", cni_driver, workdir)

    def add_pod(self, node: Node, cni_driver: str, name: str) -> tuple[nsmod.Namespace, str]:
        pod = self.make_ns("pnt-pod")
        self.pods.append(pod)
        result = self.runtime(node, cni_driver).add(node.conflist(), pod, f"{name}-{pod.name[-8:]}")
        return pod, result["ips"][0]["address"].split("/")[0]

    def wait(self, predicate, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return
            time.sleep(0.1)
        raise AssertionError(f"timed out waiting for {what}")

    def close(self) -> None:
        for node in self.nodes:
            self.kill_agent(node, signal.SIGTERM)
        self.etcd.kill()


def ping(src: nsmod.Namespace, dst: str, count: int = 1) -> bool:
    return src.run("ping", "-c", str(count), "-W", "1", "-i", "0.2", dst, check=False).returncode == 0
