"""A one-node cluster of namespaces for the proxy's semantic tests.

    client 192.168.1.2 --- c0 192.168.1.1  NODE  p1 10.244.1.1 --- pod e1 10.244.1.2
    (outside the cluster)                        p2 10.244.2.1 --- pod e2 10.244.2.2
                                                 p3 10.244.3.1 --- pod e3 10.244.3.2
                                                 p9 10.244.9.1 --- pod pc 10.244.9.2 (a client pod)

The proxy runs inside NODE (node name "node-a"); e1 and e2 are this node's endpoints, e3 is
declared to live on "node-b". Each endpoint pod runs echo_server.py (TCP 8080/8081, UDP 5353,
SCTP 9999 when the kernel has SCTP), which answers with its name and the peer it saw.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field

import yaml

from tests.support import netns as nsmod

HERE = os.path.dirname(os.path.abspath(__file__))
NODE_NAME = "node-a"
NODE_IP = "192.168.1.1"
CLIENT_IP = "192.168.1.2"
CLUSTER_CIDR = "10.244.0.0/16"
PODS = {"e1": "10.244.1.2", "e2": "10.244.2.2", "e3": "10.244.3.2", "pc": "10.244.9.2"}
POD_GATEWAYS = {"e1": "10.244.1.1", "e2": "10.244.2.1", "e3": "10.244.3.1", "pc": "10.244.9.1"}
NODE_ADDRESSES = {NODE_IP, *POD_GATEWAYS.values()}
NODES_OF = {"e1": NODE_NAME, "e2": NODE_NAME, "e3": "node-b"}
PROXY = os.path.join(os.path.dirname(sys.executable), "podnet-proxy")


def sctp_supported() -> bool:
    import socket

    try:
        socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_SCTP).close()
        return True
    except OSError:
        return False


@dataclass
class Lab:
    node: nsmod.Namespace
    client: nsmod.Namespace
    pods: dict[str, nsmod.Namespace]
    objects_dir: str = ""
    servers: list[subprocess.Popen] = field(default_factory=list)
    daemon: subprocess.Popen | None = None
    daemon_log: str = ""

    # -------------------------------------------------------------- traffic

    def probe(self, where: str, proto: str, host: str, port: int, count: int = 1, **opts) -> list[dict]:
        ns = self.client if where == "client" else self.node if where == "node" else self.pods[where]
        flags = [f"--{k}={v}" for k, v in opts.items()]
        out = ns.run(sys.executable, "-I", "-S", os.path.join(HERE, "probe.py"), proto, host, str(port), str(count),
                     *flags, timeout=120).stdout  # fmt: skip
        return json.loads(out)

    def http(self, where: str, url: str) -> dict:
        ns = self.client if where == "client" else self.node
        out = ns.run(sys.executable, "-I", "-S", os.path.join(HERE, "probe.py"), "http", url).stdout
        return json.loads(out)

    # -------------------------------------------------------------- objects and the proxy

    def write(self, filename: str, *objects: dict) -> None:
        path = os.path.join(self.objects_dir, filename)
        tmp = path + ".tmp"
        with open(tmp, "w") as f:
            yaml.safe_dump_all(list(objects), f)
        os.replace(tmp, path)  # the daemon never sees half a file

    def remove(self, filename: str) -> None:
        os.unlink(os.path.join(self.objects_dir, filename))

    def proxy_args(self, *extra: str) -> list[str]:
        return [PROXY, "--objects-dir", self.objects_dir, "--hostname-override", NODE_NAME, "--node-ip", NODE_IP,
                "--cluster-cidr", CLUSTER_CIDR, *extra]  # fmt: skip

    def once(self, *extra: str, mode: str = "iptables") -> subprocess.CompletedProcess:
        return self.node.run(*self.proxy_args("--proxy-mode", mode, "--once", *extra), check=False)

    def start_daemon(self, *extra: str, mode: str = "iptables") -> None:
        self.daemon_log = os.path.join(self.objects_dir + ".log")
        log = open(self.daemon_log, "w")  # noqa: SIM115 (kept open for the daemon's life)
        self.daemon = self.node.popen(*self.proxy_args("--proxy-mode", mode, *extra), stdout=log, stderr=log)

    def stop_daemon(self) -> str:
        if self.daemon is not None:
            self.daemon.terminate()
            try:
                self.daemon.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.daemon.kill()
                self.daemon.wait()
            self.daemon = None
        with open(self.daemon_log) as f:
            return f.read()

    def metrics(self) -> dict[str, float]:
        page = self.http("node", "http://127.0.0.1:10249/metrics")["body"]
        out = {}
        for line in page.splitlines():
            if line and not line.startswith("#"):
                key, _, value = line.rpartition(" ")
                out[key] = float(value)
        return out

    def wait_for(self, check, timeout: float = 15.0, interval: float = 0.2):
        deadline = time.monotonic() + timeout
        while True:
            value = check()
            if value or time.monotonic() > deadline:
                return value
            time.sleep(interval)

    def reset(self, objects_dir: str) -> None:
        """Between tests: no proxy rules, no conntrack entries, an empty objects directory."""
        if self.daemon is not None:
            self.stop_daemon()
        self.node.run(PROXY, "--cleanup", check=False)
        self.node.run("conntrack", "-F", check=False)
        self.objects_dir = objects_dir
        os.makedirs(objects_dir, exist_ok=True)


def build(servers_sctp: bool) -> Lab:
    node = nsmod.create("pnp-node")
    made = [node]
    try:
        client = nsmod.create("pnp-cli")
        made.append(client)
        pods = {}
        for name in PODS:
            pods[name] = nsmod.create(f"pnp-{name}")
            made.append(pods[name])
        lab = Lab(node, client, pods)
        _wire(node, client, "c0", NODE_IP, CLIENT_IP, 24)
        for i, (name, ip) in enumerate(PODS.items(), start=1):
            _wire(node, pods[name], f"p{i}", POD_GATEWAYS[name], ip, 24)
        for ns in (node, *pods.values(), client):
            # count refusals exactly: ICMP errors are rate-limited by default
            ns.run("sysctl", "-q", "-w", "net.ipv4.icmp_ratelimit=0")
        node.run("sysctl", "-q", "-w", "net.ipv4.ip_forward=1")
        node.ip("route", "add", "default", "via", CLIENT_IP)  # the upstream, as a real node has one
        for name in ("e1", "e2", "e3"):
            specs = ["tcp:8080", "tcp:8081", "udp:5353"] + (["sctp:9999"] if servers_sctp else [])
            p = pods[name].popen(sys.executable, "-I", "-S", os.path.join(HERE, "echo_server.py"), name, *specs,
                                 stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)  # fmt: skip
            lab.servers.append(p)
            assert p.stdout.readline().strip() == "ready"
        return lab
    except BaseException:
        for ns in reversed(made):
            nsmod.destroy(ns)
        raise


def _wire(node: nsmod.Namespace, other: nsmod.Namespace, node_if: str, node_ip: str, other_ip: str, plen: int) -> None:
    nsmod.sh("ip", "-n", node.name, "link", "add", node_if, "type", "veth", "peer", "name", "eth0", "netns", other.name)
    node.ip("addr", "add", f"{node_ip}/{plen}", "dev", node_if)
    node.ip("link", "set", node_if, "up")
    other.ip("addr", "add", f"{other_ip}/{plen}", "dev", "eth0")
    other.ip("link", "set", "eth0", "up")
    other.ip("route", "add", "default", "via", node_ip)


def destroy(lab: Lab) -> None:
    if lab.daemon is not None:
        lab.stop_daemon()
    for p in lab.servers:
        p.kill()
        p.wait()
    for ns in (*lab.pods.values(), lab.client, lab.node):
        nsmod.destroy(ns)


# ------------------------------------------------------------------ Kubernetes objects


def service(name: str, cluster_ip: str, ports: list[dict], **spec) -> dict:
    status = spec.pop("status", None)
    obj = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"clusterIP": cluster_ip, "ports": ports, **spec},
    }
    if status:
        obj["status"] = status
    return obj


def endpoint(pod: str, **conditions) -> dict:
    e = {"addresses": [PODS[pod]], "nodeName": NODES_OF[pod]}
    hints = conditions.pop("hints", None)
    if conditions:
        e["conditions"] = conditions
    if hints:
        e["hints"] = hints
    return e


def endpoint_slice(service_name: str, endpoints: list[dict], ports: list[dict], name: str = "") -> dict:
    return {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": name or f"{service_name}-abc",
            "namespace": "default",
            "labels": {"kubernetes.io/service-name": service_name},
        },
        "addressType": "IPv4",
        "endpoints": endpoints,
        "ports": ports,
    }


def node_object(zone: str) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": NODE_NAME, "labels": {"topology.kubernetes.io/zone": zone}},
    }
