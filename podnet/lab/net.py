"""A lab realised: namespaces and the underlay; the controller does the rest.

`Lab(spec)` is a context manager. `up()` builds, step by step, and registers the undo of each
step the moment it exists; leaving the block (or `down()`) undoes them in reverse order of
creation. `teardown(lab)` is the other half of the guarantee: it needs nothing but the lab's
name, so it also cleans up after a crash or a `kill -9` of any podnet process.

    lab namespace  podnet-<lab>       one bridge per underlay segment (podnet-br0, -br1 ...),
      |                               address .1 on each: the segments' router, the
      |                               "outside" clients stand in, and etcd (the store)
      |  veth podnet-nI <-> eth0
    node namespace podnet-<lab>.node.<node>   an underlay address and a default route to
      |                                        the router -- what a machine's network gives
      |                                        it -- and `podnet agent`, which does the rest:
      |                                        subnet, routes (host-gw or vxlan), CNI, proxy
      |  veth (podnet-cni, through the agent)
    pod namespace  podnet-<lab>.pod.<pod>

The lab writes no route to a pod subnet anywhere, and no rule: pods are routed by the
agents, exactly as on a real cluster's nodes.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

from podnet.lab import cgroup, names, pids, podlogs, spec, statefs
from podnet.lab.node import CommandFailed, Namespace, ip_batch
from podnet.lab.state import LabFiles, write_json
from podnet.progress import Meter

FILE_REMOVERS = 8  # threads that remove a lab's files at `lab down`


class LabError(RuntimeError):
    pass


@dataclass(frozen=True)
class NodeNet:
    name: str
    index: int
    ip: str
    prefixlen: int
    segment: int  # which underlay (bridge) it is plugged into
    router: str  # the lab namespace's address on that underlay: the node's default gateway
    netns: str


def underlay_plan(s: spec.LabSpec) -> tuple[list[str], list[NodeNet]]:
    """The lab namespace's address on each segment (.1) and each node's (.11, .12, ... on
    its segment; .2, .3, ... on a segment too small for that)."""
    routers, nodes = [], []
    where = {n: i for i, seg in enumerate(s.segments()) for n in seg.nodes}
    for seg in s.segments():
        net = ipaddress.ip_network(seg.cidr)
        routers.append(f"{net.network_address + 1}/{net.prefixlen}")
    counts: dict[int, int] = {}
    for index, node in enumerate(s.nodes):
        seg_index = where[node]
        net = ipaddress.ip_network(s.segments()[seg_index].cidr)
        base = 10 if net.num_addresses > len(s.segments()[seg_index].nodes) + 12 else 1
        k = counts[seg_index] = counts.get(seg_index, 0) + 1
        nodes.append(
            NodeNet(
                node,
                index,
                str(net.network_address + base + k),
                net.prefixlen,
                seg_index,
                str(net.network_address + 1),
                names.node_netns(s.name, node),
            )
        )
    return routers, nodes


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
        if statefs.mount(files.root):
            self._undo.callback(statefs.unmount, files.root)
        for sub in ("requests", "nodes"):
            os.makedirs(files.path(sub))
        routers, self.nodes = underlay_plan(s)
        lab_ns = names.lab_netns(s.name)
        net = s.network
        self.progress(
            f"lab {s.name}: {len(s.nodes)} nodes on {len(routers)} underlay(s), backend {net.backend}, "
            f"cluster {net.cluster_cidr}, services {net.service_cidr}"
        )
        all_ns = [lab_ns, *(n.netns for n in self.nodes)]
        ip_batch([f"netns add {ns}" for ns in all_ns])
        self._undo.callback(ip_batch, [f"netns del {ns}" for ns in reversed(all_ns)], None, False)
        self._underlay(lab_ns, routers)
        for node in self.nodes:
            self._node(lab_ns, node)
        write_json(
            files.network,
            {
                "lab": s.name,
                "netns": lab_ns,
                "outside": routers[0].split("/")[0],
                # etcd listens on the router's first address: every node reaches it by its default route
                "etcd": {"host": routers[0].split("/")[0]},
                "clusterCIDR": net.cluster_cidr,
                "nodeSubnetSize": net.node_subnet_size,
                "serviceCIDR": net.service_cidr,
                "proxyMode": net.proxy_mode,
                "backend": net.backend,
                "underlays": [r for r in routers],
                # "subnet" is the agent's to choose: the controller fills it in from its conflist
                "nodes": [
                    {"name": n.name, "ip": n.ip, "subnet": "", "netns": n.netns, "underlay": n.segment}
                    for n in self.nodes
                ],
            },
        )
        write_json(files.desired, {"generation": 1, "spec": spec.to_dict(s), "history": {}})

    def _underlay(self, lab_ns: str, routers: list[str]) -> None:
        lines = ["link set lo up"]
        for i, router in enumerate(routers):
            bridge = names.bridge(i)
            lines += [f"link add {bridge} type bridge", f"link set {bridge} up", f"addr add {router} dev {bridge}"]
        ip_batch(lines, lab_ns)
        if len(routers) > 1:  # the lab namespace routes between the segments: a router's one setting
            Namespace(lab_ns).run(["sysctl", "-qw", "net.ipv4.ip_forward=1"], check=True)

    def _node(self, lab_ns: str, node: NodeNet) -> None:
        port = names.node_port_link(node.index)
        ip_batch(
            [
                f"link add {port} type veth peer name eth0 netns {node.netns}",
                f"link set {port} master {names.bridge(node.segment)}",
                f"link set {port} up",
            ],
            lab_ns,
        )
        ip_batch(
            [
                "link set lo up",
                f"addr add {node.ip}/{node.prefixlen} dev eth0",
                "link set eth0 up",
                f"route add default via {node.router}",
            ],
            node.netns,
        )
        # A node forwards its pods' packets (as kubeadm's preflight asks of a real node); rp_filter
        # off because replies through a Service's DNAT may come back on another link than they left.
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
    pids.write(files.pidfile, proc.pid)  # at once, so no second command starts another
    return proc.pid


# -- tearing down from the name alone -------------------------------------------------------
def _netns_inodes(lab: str) -> dict[int, str]:
    inodes = {}
    for name in names.list_netns():
        if names.is_lab_netns(lab, name):
            with contextlib.suppress(OSError):
                inodes[os.stat(os.path.join(names.NETNS_DIR, name)).st_ino] = name
    return inodes


def _pids_in(inodes: dict[int, str]) -> list[tuple[int, int]]:
    """(pid, start time) of every process whose network namespace is one of the lab's (one
    pass over /proc)."""
    found = []
    me = os.getpid()
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == me:
            continue
        try:
            if os.stat(f"/proc/{entry}/ns/net").st_ino in inodes:
                started = pids.start_time(int(entry))
                if started is not None:
                    found.append((int(entry), started))
        except OSError:
            continue
    return found


def _in(inodes: dict[int, str]) -> Callable[[int], bool]:
    def check(pid: int) -> bool:
        try:
            return os.stat(f"/proc/{pid}/ns/net").st_ino in inodes
        except OSError:
            return False

    return check


def kill_in_namespaces(netns_names: list[str], spare: frozenset[int] = frozenset()) -> None:
    """SIGKILL every process inside these namespaces but `spare` (and wait until they are
    gone)."""
    inodes = {}
    for name in netns_names:
        with contextlib.suppress(OSError):
            inodes[os.stat(os.path.join(names.NETNS_DIR, name)).st_ino] = name
    _kill_all_in(inodes, spare)


def _kill_all_in(inodes: dict[int, str], spare: frozenset[int] = frozenset()) -> None:
    """The walk of /proc: each process found is signalled through a pidfd after its start
    time and namespace are checked again, so a pid reused since the scan is never hit."""
    in_lab = _in(inodes)
    for _ in range(40):
        found = [p for p in _pids_in(inodes) if p[0] not in spare]
        if not found:
            return
        for pid, started in found:
            pids.send(pid, started, signal.SIGKILL, in_lab)
        time.sleep(0.05)


def _kill_group(lab: str) -> str | None:
    """SIGKILL to every process in the lab's cgroup (cgroup.py), at once; the cgroup, if any."""
    group = cgroup.recorded(lab)
    if group is not None:
        cgroup.kill(group)
    return group


def _reap_group(lab: str, group: str | None) -> None:
    if group is not None and not cgroup.remove(group):
        raise LabError(f"lab {lab}: processes of cgroup {group} outlived SIGKILL")


def stop_processes(lab: str) -> dict[int, str]:
    """Kill the controller, then every process of the lab: its cgroup's, and any other
    inside one of its namespaces."""
    # first, so it cannot start new pods meanwhile; only if the pid file still names it
    pids.kill(LabFiles(lab).pidfile)
    group = _kill_group(lab)
    inodes = _netns_inodes(lab)
    _reap_group(lab, group)
    _kill_all_in(inodes)
    return inodes


NETNS_DELETERS = 4  # `ip -batch` processes that delete a lab's namespaces side by side


def _delete_netns(pool: ThreadPoolExecutor, netns_names: list[str]) -> list[Future]:
    """`netns del` of these names in NETNS_DELETERS batches at once: each unmount waits for an
    RCU grace period after it lets go of the kernel's mount lock, so unmounts side by side
    share their waits where one batch waits for each in turn."""
    ordered = sorted(netns_names, key=lambda n: (n.count("."), n), reverse=True)  # pods, nodes, lab
    chunks = [ordered[i::NETNS_DELETERS] for i in range(NETNS_DELETERS)]
    return [pool.submit(ip_batch, [f"netns del {n}" for n in c], None, False) for c in chunks if c]


def teardown(lab: str, phases: dict[str, float] | None = None) -> list[str]:
    """Remove everything lab `lab` made: its processes, namespaces (and so every link and
    route in them) and its state directory. Safe to run twice; touches nothing else.
    `phases`, if given, gets how long each step took (seconds), for the benchmark."""
    clock = _Phases(phases)
    files = LabFiles(lab)
    pids.kill(files.pidfile)  # the controller first: it makes no pod (nor namespace) after this
    # which namespaces are the lab's, while the machine is still quiet: a thousand dying
    # processes make every system call of the next second slow
    inodes = _netns_inodes(lab)
    clock.mark("scan")
    group = _kill_group(lab)  # every other process, at once
    clock.mark("kill")
    # Namespaces and files go on threads while the processes die (a namespace lives on
    # until its last process is gone; its links go with it): the kernel's work overlaps. On
    # this machine's disk a thousand pods' /etc/netns/ entries and logs take seconds to unlink.
    with ThreadPoolExecutor(FILE_REMOVERS + NETNS_DELETERS) as pool:
        deleting = _delete_netns(pool, list(inodes.values()))
        podlogs.remove_all_etc(lab, pool)
        on_tmpfs = statefs.is_mounted(files.root)  # then its files go at once, unmounted
        if group is not None and not on_tmpfs:  # nothing in the lab writes files any more
            _remove_state_subdirs(files, pool)
        _reap_group(lab, group)
        clock.mark("processes")
        _kill_all_in(inodes)  # what was never in the cgroup (`lab exec`, a lab from before cgroups)
        clock.mark("sweep")
        for done in deleting:
            with contextlib.suppress(CommandFailed):
                done.result()
        clock.mark("netns del")
        # one made after the scan by a batch in flight when the controller was killed
        late = [n for n in names.list_netns() if names.is_lab_netns(lab, n)]
        if late:
            kill_in_namespaces(late)
            ip_batch([f"netns del {n}" for n in late], check=False)
        if not on_tmpfs:
            _remove_state_subdirs(files, pool)
    clock.mark("files wait")
    statefs.unmount(files.root)
    shutil.rmtree(files.root, ignore_errors=True)
    clock.mark("state dir")
    leftover = [n for n in names.list_netns() if names.is_lab_netns(lab, n)]
    if leftover:
        raise LabError(f"lab {lab}: could not remove namespaces {', '.join(leftover)}")
    return sorted(inodes.values(), key=lambda n: (n.count("."), n), reverse=True)


def _remove_state_subdirs(files: LabFiles, pool: ThreadPoolExecutor) -> None:
    with contextlib.suppress(FileNotFoundError):
        for entry in os.scandir(files.root):
            if entry.is_dir(follow_symlinks=False):
                pool.submit(shutil.rmtree, entry.path, True)


class _Phases:
    """Seconds per step of a teardown, into a caller's dict (or nowhere)."""

    def __init__(self, into: dict[str, float] | None) -> None:
        self.into = into
        self.t = time.perf_counter()

    def mark(self, step: str) -> None:
        now = time.perf_counter()
        if self.into is not None:
            self.into[step] = self.into.get(step, 0.0) + now - self.t
        self.t = now


def ensure_root() -> None:
    if os.geteuid() != 0:
        raise LabError("labs build network namespaces: run as root")
