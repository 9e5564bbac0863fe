"""Where things are: pods, nodes and their interfaces, found from a lab's state or, on a real
node, from the CNI attachments podnet made (the alias podnet-cni writes on every host veth).

Everything the debug commands need is reduced to a `Place` (a namespace and an interface in
it), a `PodInfo` and a `NodeInfo`; capture, trace and probe never read lab files themselves.
"""

from __future__ import annotations

import glob
import json
import os
import subprocess
from dataclasses import dataclass, field

from cni import veth
from podnet.lab import names
from podnet.lab.selectors import selects
from podnet.lab.state import LabFiles, read_json

CNI_CACHE = "/var/lib/cni/results"  # libcni's cache: it records the runtime's CNI_ARGS


class TargetError(ValueError):
    """A pod/, node/ or svc/ reference that names nothing; the message says which."""


@dataclass(frozen=True)
class Place:
    """An interface in a namespace. netns is a name under /run/netns, or None for our own."""

    netns: str | None
    ifname: str | None  # None: every interface of the namespace
    label: str  # how a person calls it: "pod/web-1", "node/a"

    def path(self) -> str | None:
        return os.path.join(names.NETNS_DIR, self.netns) if self.netns else None


@dataclass(frozen=True)
class PodInfo:
    name: str
    ip: str | None
    node: str
    netns: str | None  # the pod's own namespace (lab pods); None when unknown
    node_netns: str | None
    host_veth: str
    port: int | None = None  # what its workload listens on, if known
    running: bool = True


@dataclass(frozen=True)
class NodeInfo:
    name: str
    ip: str
    subnet: str
    netns: str | None
    uplink: str = "eth0"
    underlay_port: str = ""  # the uplink's other end, in the underlay namespace (labs)


@dataclass(frozen=True)
class EndpointInfo:
    pod: str
    ip: str
    node: str
    ready: bool
    terminating: bool
    available: bool  # ready long enough that every node's proxy has programmed it


@dataclass(frozen=True)
class ServiceInfo:
    name: str
    cluster_ip: str
    ports: tuple[tuple[int, int], ...]  # (port, targetPort)
    endpoints: tuple[str, ...]  # pod names of ready endpoints
    not_ready: tuple[str, ...] = ()  # pods it selects that are not ready (so not endpoints)
    node_ports: tuple[int, ...] = ()
    seen: tuple[EndpointInfo, ...] = ()  # every endpoint, ready or draining


@dataclass
class Cluster:
    """What one command may look at: a lab, or the one real node it runs on."""

    lab: str | None
    nodes: list[NodeInfo] = field(default_factory=list)
    pods: list[PodInfo] = field(default_factory=list)
    services: list[ServiceInfo] = field(default_factory=list)
    underlay_netns: str | None = None
    proxy_mode: str = "iptables"

    def pod(self, name: str) -> PodInfo:
        for p in self.pods:
            if p.name == name:
                return p
        raise TargetError(f"pod/{name}: no such pod{self._where()}")

    def node(self, name: str) -> NodeInfo:
        for n in self.nodes:
            if n.name == name:
                return n
        raise TargetError(f"node/{name}: no such node{self._where()} (nodes: {', '.join(n.name for n in self.nodes)})")

    def service(self, name: str) -> ServiceInfo:
        for s in self.services:
            if s.name == name:
                return s
        raise TargetError(f"svc/{name}: no such Service{self._where()}")

    def pod_by_ip(self, ip: str) -> PodInfo | None:
        return next((p for p in self.pods if p.ip == ip), None)

    def node_by_ip(self, ip: str) -> NodeInfo | None:
        return next((n for n in self.nodes if n.ip == ip), None)

    def node_by_netns(self, netns: str | None) -> NodeInfo | None:
        return next((n for n in self.nodes if n.netns == netns), None)

    def namespaces(self) -> list[str | None]:
        """Every namespace a packet between pods can cross: nodes and the underlay."""
        out = [n.netns for n in self.nodes]
        if self.underlay_netns:
            out.append(self.underlay_netns)
        return out

    def _where(self) -> str:
        return f" in lab {self.lab}" if self.lab else " on this node"


def split_ref(ref: str, kinds: tuple[str, ...], field_name: str) -> tuple[str, str]:
    aliases = {"po": "pod", "pods": "pod", "no": "node", "nodes": "node", "service": "svc", "services": "svc"}
    kind, sep, name = ref.partition("/")
    kind = aliases.get(kind, kind)
    if not sep or not name or kind not in kinds:
        raise TargetError(f"{field_name}: {ref!r} is not {' or '.join(k + '/NAME' for k in kinds)}")
    return kind, name


# -- a lab ----------------------------------------------------------------------------------
def lab_cluster(lab: str) -> Cluster:
    files = LabFiles(lab)
    net = read_json(files.network)
    if net is None:
        raise TargetError(f"--lab: lab {lab!r} is not up")
    st = files.read_status()
    ports = _workload_ports(files)
    nodes = [
        NodeInfo(n["name"], n["ip"], n["subnet"], n["netns"], underlay_port=names.node_port_link(n.get("index", i)))
        for i, n in enumerate(net["nodes"])
    ]
    node_ns = {n.name: n.netns for n in nodes}
    pods = [
        PodInfo(
            name=p["name"],
            ip=p["ip"],
            node=p["node"],
            netns=p["netns"],
            node_netns=node_ns.get(p["node"]),
            host_veth=veth.host_name(names.container_id(lab, p["name"]), "eth0"),
            port=ports.get(p["deployment"]),
            running=p["phase"] == "Running",
        )
        for p in st.get("pods", [])
    ]
    services = [
        ServiceInfo(
            name=s["name"],
            cluster_ip=s["clusterIP"],
            ports=tuple((p["port"], p["targetPort"]) for p in s["ports"]),
            endpoints=tuple(e["pod"] for e in s["endpoints"] if e["ready"]),
            not_ready=tuple(
                p["name"]
                for p in st.get("pods", [])
                if p["phase"] != "Running" and s.get("selector") and selects(s["selector"], p.get("labels") or {})
            ),
            node_ports=tuple(p["nodePort"] for p in s["ports"] if p.get("nodePort")),
            seen=tuple(
                EndpointInfo(e["pod"], e["ip"], e["node"], e["ready"], e["terminating"], e.get("available", e["ready"]))
                for e in s["endpoints"]
            ),
        )
        for s in st.get("services", [])
        if s.get("clusterIP")
    ]
    try:
        mode = files.desired_spec().network.proxy_mode
    except Exception:  # a lab mid-change: assume the default mode
        mode = "iptables"
    return Cluster(lab, nodes, pods, services, underlay_netns=net["netns"], proxy_mode=mode)


def _workload_ports(files: LabFiles) -> dict[str, int]:
    try:
        from podnet.lab.dns import with_cluster_dns  # the lab's DNS pods are pods too

        return {d.name: d.workload.port for d in with_cluster_dns(files.desired_spec()).deployments}
    except Exception:  # a lab mid-change: ports are a convenience, not a need
        return {}


def present_lab(name: str | None) -> str | None:
    """The lab to use: the one named, else the only one up, else None (a real node)."""
    if name:
        if not LabFiles(name).exists():
            raise TargetError(f"--lab: lab {name!r} is not up")
        return name
    up = [lab for lab in names.labs_present() if LabFiles(lab).exists()]
    if len(up) > 1:
        raise TargetError(f"--lab: several labs are up ({', '.join(up)}): choose one")
    return up[0] if up else None


# -- a real node ----------------------------------------------------------------------------
@dataclass(frozen=True)
class Attachment:
    """One podnet veth on this node: what its alias says, and the runtime's pod name if known."""

    host_veth: str
    network: str
    container_id: str
    ifname: str
    pod_name: str | None


def links(netns: str | None) -> list[dict]:
    args = ["ip", "-j", *(["-n", netns] if netns else []), "link", "show"]
    out = subprocess.run(args, capture_output=True, text=True, check=True).stdout
    return json.loads(out or "[]")


def attachments(netns: str | None = None, cache_dir: str = CNI_CACHE) -> list[Attachment]:
    pod_names = _pod_names_from_cache(cache_dir)
    out = []
    for link in links(netns):
        parsed = veth.parse_alias(link.get("ifalias", ""))
        if parsed:
            network, cid, ifname = parsed
            out.append(Attachment(link["ifname"], network, cid, ifname, pod_names.get((cid, ifname))))
    return out


def _pod_names_from_cache(cache_dir: str) -> dict[tuple[str, str], str]:
    """libcni keeps each ADD's CNI_ARGS; kubelet's runtimes put K8S_POD_NAME there."""
    found = {}
    for path in glob.glob(os.path.join(cache_dir, "*")):
        try:
            with open(path) as f:
                data = json.load(f)
            cni_args = dict(data.get("cniArgs") or [])
        except (OSError, ValueError, TypeError):
            continue
        if "K8S_POD_NAME" in cni_args:
            found[(data.get("containerId"), data.get("ifName"))] = cni_args["K8S_POD_NAME"]
    return found


def node_pod_place(name: str, netns: str | None = None, cache_dir: str = CNI_CACHE) -> Place:
    """pod/NAME on a real node: NAME is the pod's name (from libcni's cache) or its container
    id (or a unique prefix of it)."""
    atts = attachments(netns, cache_dir)
    exact = [a for a in atts if name in (a.pod_name, a.container_id)]
    matches = exact or [a for a in atts if a.container_id.startswith(name)]
    if not matches:
        raise TargetError(f"pod/{name}: no podnet attachment for a pod or container of that name on this node")
    if len({a.host_veth for a in matches}) > 1:
        ids = ", ".join(sorted(a.container_id[:12] for a in matches))
        raise TargetError(f"pod/{name}: ambiguous, it matches containers {ids}")
    return Place(netns, matches[0].host_veth, f"pod/{name}")


def default_uplink(netns: str | None = None) -> str:
    args = ["ip", "-j", *(["-n", netns] if netns else []), "route", "show", "default"]
    routes = json.loads(subprocess.run(args, capture_output=True, text=True, check=True).stdout or "[]")
    for r in routes:
        if r.get("dev"):
            return r["dev"]
    raise TargetError("node/: this node has no default route, so no underlay interface to capture on")
