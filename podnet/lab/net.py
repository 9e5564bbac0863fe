"""A lab realised: namespaces, the underlay, node subnets and routes, and the controller.

`Lab(spec)` is a context manager. `up()` builds, step by step, and registers the undo of each
step the moment it exists; leaving the block (or `down()`) undoes them in reverse order of
creation. `teardown(lab)` is the other half of the guarantee: it needs nothing but the lab's
name, so it also cleans up after a crash or a `kill -9` of any podnet process.

    lab namespace  podnet-<lab>        bridge podnet-br0, underlay .1 ("outside" clients)
      |  veth podnet-nI <-> eth0
    node namespace podnet-<lab>.node.<node>   underlay address, pod subnet, podnet-proxy,
      |  veth (podnet-cni)                      host-gw routes to the other nodes' subnets
    pod namespace  podnet-<lab>.pod.<pod>
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

from cni import install
from podnet.lab import names, spec
from podnet.lab.node import CommandFailed, Namespace, ip_batch
from podnet.lab.state import LabFiles, write_json
from podnet.progress import Meter


class LabError(RuntimeError):
    pass


@dataclass(frozen=True)
class NodeNet:
    name: str
    index: int
    ip: str
    subnet: str
    netns: str


def underlay_plan(s: spec.LabSpec) -> tuple[str, list[str]]:
    """The lab namespace's address and each node's, in order: .1, then .11, .12, ..."""
    net = ipaddress.ip_network(s.network.underlay_cidr)
    base = 10 if net.num_addresses > len(s.nodes) + 12 else 1
    outside = f"{net.network_address + 1}/{net.prefixlen}"
    return outside, [str(net.network_address + base + 1 + i) for i in range(len(s.nodes))]


def node_subnets(s: spec.LabSpec, files: LabFiles) -> dict[str, str]:
    """Each node's pod subnet from the cluster IPAM (ipam.subnets), stored with the lab."""
    from ipam.store_url import open_store
    from ipam.subnets import NodeSubnetAllocator

    store = open_store(f"file:{files.path('ipam', 'nodes')}")
    allocator = NodeSubnetAllocator(store, [s.network.cluster_cidr], [s.network.node_subnet_size])
    return {node: str(allocator.acquire(node)[0]) for node in s.nodes}


def netconf(lab: str, node: str, subnet: str, files: LabFiles) -> dict:
    return {
        "cniVersion": "1.1.0",
        "name": f"podnet-{lab}",
        "type": "podnet-cni",
        "ipam": {
            "type": "podnet-ipam",
            "ranges": [[{"subnet": subnet}]],
            "dataDir": files.path("ipam", "pods", node),
        },
    }


class Lab:
    """with Lab(spec) as lab: ... — built on entry, torn down in reverse on exit."""

    def __init__(
        self,
        lab_spec: spec.LabSpec,
        keep: bool = False,
        progress: Callable[[str], object] = print,
        meter: Meter | None = None,
    ):
        self.spec = lab_spec
        self.files = LabFiles(lab_spec.name)
        self.keep = keep
        self.progress = progress  # what is being done, a line at a time
        self.meter = meter  # how many pods are ready
        self._undo = contextlib.ExitStack()
        self.nodes: list[NodeNet] = []

    # -- context manager ----------------------------------------------------------------
    def __enter__(self) -> Lab:
        self.up()
        return self

    def __exit__(self, *exc) -> None:
        if not self.keep:
            self.down()

    def down(self) -> None:
        self._undo.close()
        teardown(self.spec.name)  # whatever the steps did not know about (pods, processes)

    # -- building -----------------------------------------------------------------------
    def up(self, wait: float = 120.0) -> dict:
        if self.files.exists() or any(names.is_lab_netns(self.spec.name, n) for n in names.list_netns()):
            raise LabError(f"lab {self.spec.name!r} is already up (run `podnet lab down {self.spec.name}` first)")
        try:
            with self._undo:  # on any failure: undo what exists so far, in reverse
                self._build()
                status = self._start_controller(wait)
                self._undo = self._undo.pop_all()
            return status
        except BaseException:  # Ctrl-C during `up` too: pods exist that the undo steps do not know
            teardown(self.spec.name)
            raise

    def _build(self) -> None:
        s, files = self.spec, self.files
        os.makedirs(files.root)
        self._undo.callback(shutil.rmtree, files.root, True)
        for sub in ("objects", "requests", "bin"):
            os.makedirs(files.path(sub))
        subnets = node_subnets(s, files)
        outside, ips = underlay_plan(s)
        lab_ns = names.lab_netns(s.name)
        self.nodes = [NodeNet(n, i, ips[i], subnets[n], names.node_netns(s.name, n)) for i, n in enumerate(s.nodes)]
        self.progress(
            f"lab {s.name}: {len(s.nodes)} nodes, cluster {s.network.cluster_cidr}, services {s.network.service_cidr}"
        )
        all_ns = [lab_ns, *(n.netns for n in self.nodes)]
        ip_batch([f"netns add {ns}" for ns in all_ns])
        self._undo.callback(ip_batch, [f"netns del {ns}" for ns in reversed(all_ns)], None, False)
        self._underlay(lab_ns, outside)
        for node in self.nodes:
            self._node(lab_ns, node, outside)
        # the 'outside' reaches pods as a router would: each node's subnet via that node
        ip_batch([f"route add {n.subnet} via {n.ip}" for n in self.nodes], lab_ns)
        install.write_launchers(files.path("bin"))
        write_json(
            files.network,
            {
                "lab": s.name,
                "netns": lab_ns,
                "outside": outside.split("/")[0],
                "cni_bin": files.path("bin"),
                "nodes": [
                    {
                        "name": n.name,
                        "ip": n.ip,
                        "subnet": n.subnet,
                        "netns": n.netns,
                        "netconf": self._write_netconf(n),
                    }
                    for n in self.nodes
                ],
            },
        )
        write_json(files.desired, {"generation": 1, "spec": spec.to_dict(s), "history": {}})

    def _write_netconf(self, node: NodeNet) -> str:
        path = self.files.path(f"netconf-{node.name}.json")
        with open(path, "w") as f:
            json.dump(netconf(self.spec.name, node.name, node.subnet, self.files), f)
        return path

    def _underlay(self, lab_ns: str, outside: str) -> None:
        ip_batch(
            [
                "link set lo up",
                f"link add {names.BRIDGE} type bridge",
                f"link set {names.BRIDGE} up",
                f"addr add {outside} dev {names.BRIDGE}",
            ],
            lab_ns,
        )

    def _node(self, lab_ns: str, node: NodeNet, outside: str) -> None:
        prefix = outside.split("/")[1]
        port = names.node_port_link(node.index)
        ip_batch(
            [
                f"link add {port} type veth peer name eth0 netns {node.netns}",
                f"link set {port} master {names.BRIDGE}",
                f"link set {port} up",
            ],
            lab_ns,
        )
        others = [f"route add {o.subnet} via {o.ip}" for o in self.nodes if o.name != node.name]
        ip_batch(
            [
                "link set lo up",
                f"addr add {node.ip}/{prefix} dev eth0",
                "link set eth0 up",
                f"route add default via {outside.split('/')[0]}",
                *others,  # host-gw: every other node's pods through that node's address
            ],
            node.netns,
        )
        Namespace(node.netns).run(
            [
                "sysctl",
                "-qw",
                "net.ipv4.ip_forward=1",
                "net.ipv4.conf.all.rp_filter=0",
                "net.ipv4.conf.default.rp_filter=0",
            ],
            check=True,
        )

    def _start_controller(self, wait: float) -> dict:
        files = self.files
        start_controller(self.spec.name)
        # undone first: the controller, then every process it started in the lab's namespaces
        self._undo.callback(stop_processes, self.spec.name)
        total = sum(d.replicas for d in self.spec.deployments)

        def ready(st: dict) -> tuple[int, int, str]:
            return sum(1 for p in st.get("pods", []) if p["ready"]), total, ""

        def serving(st: dict) -> bool:
            """Every pod ready, and an endpoint long enough for every node's proxy to have it."""
            deps = st.get("deployments", [])
            return bool(st.get("converged")) and all(d["available"] == d["replicas"] for d in deps)

        try:
            return files.wait(serving, wait, ready, self.meter)
        finally:
            if self.meter:
                self.meter.close()


def start_controller(lab: str) -> int:
    """The lab's controller, inside the lab namespace, in a session of its own so it
    outlives the command that started it. A controller started again takes over."""
    files = LabFiles(lab)
    with open(files.log, "a") as log:
        proc = Namespace(names.lab_netns(lab)).popen(
            [sys.executable, "-m", "podnet.lab.controller", lab],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            cwd="/",
        )
    with open(files.pidfile, "w") as f:  # at once, so no second command starts another
        f.write(f"{proc.pid}\n")
    return proc.pid


# -- tearing down from the name alone -------------------------------------------------------
def _netns_inodes(lab: str) -> dict[int, str]:
    inodes = {}
    for name in names.list_netns():
        if names.is_lab_netns(lab, name):
            with contextlib.suppress(OSError):
                inodes[os.stat(os.path.join(names.NETNS_DIR, name)).st_ino] = name
    return inodes


def _pids_in(inodes: dict[int, str]) -> list[int]:
    """Every process whose network namespace is one of the lab's (one pass over /proc)."""
    pids = []
    me = os.getpid()
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == me:
            continue
        try:
            if os.stat(f"/proc/{entry}/ns/net").st_ino in inodes:
                pids.append(int(entry))
        except OSError:
            continue
    return pids


def kill_in_namespaces(netns_names: list[str]) -> None:
    """SIGKILL every process inside these namespaces (and wait until they are gone)."""
    inodes = {}
    for name in netns_names:
        with contextlib.suppress(OSError):
            inodes[os.stat(os.path.join(names.NETNS_DIR, name)).st_ino] = name
    for _ in range(40):
        pids = _pids_in(inodes)
        if not pids:
            return
        for p in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(p, signal.SIGKILL)
        time.sleep(0.05)


def stop_processes(lab: str) -> dict[int, str]:
    """Kill the controller, then every process inside one of the lab's namespaces."""
    pid = LabFiles(lab).controller_pid()
    if pid:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)  # first, so it cannot start new pods meanwhile
    inodes = _netns_inodes(lab)
    kill_in_namespaces(list(inodes.values()))
    return inodes


def teardown(lab: str) -> list[str]:
    """Remove everything lab `lab` made: its processes, namespaces (and so every link and
    route in them) and its state directory. Safe to run twice; touches nothing else."""
    files = LabFiles(lab)
    inodes = stop_processes(lab)
    removed = sorted(inodes.values(), key=lambda n: (n.count("."), n), reverse=True)
    if removed:
        with contextlib.suppress(CommandFailed):
            ip_batch([f"netns del {n}" for n in removed], check=False)
    shutil.rmtree(files.root, ignore_errors=True)
    leftover = [n for n in names.list_netns() if names.is_lab_netns(lab, n)]
    if leftover:
        raise LabError(f"lab {lab}: could not remove namespaces {', '.join(leftover)}")
    return removed


def ensure_root() -> None:
    if os.geteuid() != 0:
        raise LabError("labs build network namespaces: run as root")
