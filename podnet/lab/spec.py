"""A lab described: nodes, networks and workloads as plain, frozen values.

The spec is pure (mininet's `Topo` idea): it parses from the YAML a person writes in
`netns-labs/`, serialises back to the same dictionaries, and is checked completely before
anything touches the kernel, so bad input changes nothing and its error names the field.

Limits (documented in the README; a lab is a learning tool on one machine): at most
MAX_NODES nodes, MAX_DEPLOYMENTS deployments, MAX_SERVICES Services and MAX_PODS replicas in
all; files of at most MAX_FILE_BYTES, UTF-8, YAML nested at most MAX_DEPTH deep, read through
`safeload` (regular files only, never blocking, aliases bounded).
"""

from __future__ import annotations

import hashlib
import importlib.resources
import ipaddress
import json
import re
from dataclasses import asdict, dataclass, field, replace

import safeload

# matched with fullmatch: `$` would accept a name ending in a newline
NAME = re.compile(r"[a-z0-9]([a-z0-9-]*[a-z0-9])?")
LABEL_NAME = re.compile(
    r"([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?"
)
LABEL_VALUE = re.compile(r"([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?")
MAX_NODES = 100
MAX_DEPLOYMENTS = 200
MAX_SERVICES = 200
MAX_PODS = 5000  # replicas of all deployments together
MAX_FILE_BYTES = 1 << 20
MAX_DEPTH = 32
LIMITS = safeload.Limits(max_bytes=MAX_FILE_BYTES, max_depth=MAX_DEPTH, max_nodes=200_000)
MAX_LAB_NAME = 16  # keeps `podnet-<lab>-...` names readable; namespace names allow more
PROXY_MODES = ("iptables", "nftables")  # ipvs needs kernel IPVS and dummy links
BACKENDS = ("host-gw", "vxlan")  # the node agent's: routes via a neighbour, or a VXLAN overlay
WORKLOAD_KINDS = ("http", "counter", "command")
SERVICE_TYPES = ("ClusterIP", "NodePort")
NODEPORT_RANGE = (30000, 32767)


class SpecError(ValueError):
    """Bad lab input; the message names the field and what is wrong with it."""


@dataclass(frozen=True)
class Underlay:
    """One underlay segment (a bridge in the lab namespace) and the nodes plugged into it."""

    cidr: str
    nodes: tuple[str, ...]


@dataclass(frozen=True)
class Network:
    cluster_cidr: str = "10.244.0.0/16"
    service_cidr: str = "10.96.0.0/16"
    node_subnet_size: int = 24
    underlay_cidr: str = "192.168.50.0/24"  # the one segment, or the first of `underlays`
    proxy_mode: str = "iptables"
    backend: str = "host-gw"  # host-gw on one segment; several segments need vxlan
    # several segments joined by the lab namespace as a router; () = every node on underlay_cidr
    underlays: tuple[Underlay, ...] = ()


@dataclass(frozen=True)
class Workload:
    """What a pod runs: the built-in HTTP server, the shared counter, or a command."""

    kind: str = "http"
    port: int = 8080
    backend: str | None = None  # a Service the http workload calls for the shared count
    command: tuple[str, ...] = ()


@dataclass(frozen=True)
class Deployment:
    name: str
    replicas: int = 1
    labels: dict[str, str] = field(default_factory=dict)
    version: str = "v1"
    workload: Workload = Workload()

    def template_hash(self) -> str:
        """Identifies one revision of the pod template, as kube's pod-template-hash does."""
        body = json.dumps({"v": self.version, "w": asdict(self.workload), "l": self.labels}, sort_keys=True)
        return hashlib.sha256(body.encode()).hexdigest()[:5]


@dataclass(frozen=True)
class ServicePort:
    port: int
    target_port: int
    node_port: int | None = None
    name: str = ""
    protocol: str = "TCP"


@dataclass(frozen=True)
class Service:
    name: str
    selector: dict[str, str]
    ports: tuple[ServicePort, ...]
    type: str = "ClusterIP"
    cluster_ip: str | None = None


@dataclass(frozen=True)
class LabSpec:
    name: str
    nodes: tuple[str, ...]
    network: Network = Network()
    deployments: tuple[Deployment, ...] = ()
    services: tuple[Service, ...] = ()

    def deployment(self, name: str) -> Deployment | None:
        return next((d for d in self.deployments if d.name == name), None)

    def service(self, name: str) -> Service | None:
        return next((s for s in self.services if s.name == name), None)

    def with_deployment(self, dep: Deployment) -> LabSpec:
        others = tuple(d for d in self.deployments if d.name != dep.name)
        return replace(self, deployments=(*others, dep))

    def segments(self) -> tuple[Underlay, ...]:
        """Every underlay segment with its nodes, in order (one segment unless split)."""
        return self.network.underlays or (Underlay(self.network.underlay_cidr, self.nodes),)

    def with_service(self, svc: Service) -> LabSpec:
        others = tuple(s for s in self.services if s.name != svc.name)
        return check(replace(self, services=(*others, svc)))


# -- parsing: YAML dictionaries -> frozen values ------------------------------------------
def _mapping(value, where: str) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise SpecError(f"{where}: expected a mapping, got {type(value).__name__}")
    return value


def _name(value, where: str) -> str:
    if not isinstance(value, str) or not NAME.fullmatch(value) or len(value) > 40:
        raise SpecError(f"{where}: {value!r} is not a valid name (lowercase letters, digits and '-')")
    return value


def _int(value, where: str, lo: int, hi: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not lo <= value <= hi:
        raise SpecError(f"{where}: {value!r} must be an integer from {lo} to {hi}")
    return value


def _cidr(value, where: str) -> str:
    try:
        return str(ipaddress.ip_network(value, strict=True))
    except (ValueError, TypeError) as e:
        raise SpecError(f"{where}: {value!r} is not a network address in CIDR form ({e})") from None


def _labels(value, where: str) -> dict[str, str]:
    labels = _mapping(value, where)
    for k, v in labels.items():
        if not isinstance(k, str) or len(k) > 316 or not LABEL_NAME.fullmatch(k):
            raise SpecError(f"{where}: {str(k)[:80]!r} is not a valid label key")
        if not isinstance(v, str | int | float) or isinstance(v, bool):
            raise SpecError(f"{where}.{k}: label values must be strings")
        if len(str(v)) > 63 or not LABEL_VALUE.fullmatch(str(v)):
            raise SpecError(f"{where}.{k}: {str(v)[:80]!r} is not a valid label value")
    return {k: str(v) for k, v in labels.items()}


def _unknown(data: dict, known: set[str], where: str) -> None:
    extra = sorted(set(data) - known)
    if extra:
        raise SpecError(f"{where}: unknown field {extra[0]!r} (known: {', '.join(sorted(known))})")


def parse_underlays(value, where: str) -> tuple[Underlay, ...]:
    out = []
    for i, item in enumerate(_list(value, where)):
        w = f"{where}[{i}]"
        item = _mapping(item, w)
        _unknown(item, {"cidr", "nodes"}, w)
        nodes = tuple(_name(n, f"{w}.nodes[{j}]") for j, n in enumerate(_list(item.get("nodes"), f"{w}.nodes")))
        if not nodes:
            raise SpecError(f"{w}.nodes: an underlay needs at least one node")
        out.append(Underlay(_cidr(item.get("cidr"), f"{w}.cidr"), nodes))
    return tuple(out)


def parse_network(data, where: str = "network") -> Network:
    data = _mapping(data, where)
    known = {"clusterCIDR", "serviceCIDR", "nodeSubnetSize", "underlayCIDR", "underlays", "proxyMode", "backend"}
    _unknown(data, known, where)
    d = Network()
    underlays = parse_underlays(data.get("underlays"), f"{where}.underlays")
    if underlays and "underlayCIDR" in data:
        raise SpecError(f"{where}.underlayCIDR: give either underlayCIDR (one segment) or underlays, not both")
    underlay_cidr = underlays[0].cidr if underlays else data.get("underlayCIDR", d.underlay_cidr)
    backend = data.get("backend", "vxlan" if len(underlays) > 1 else "host-gw")
    if backend not in BACKENDS:
        raise SpecError(f"{where}.backend: {backend!r} is not one of {', '.join(BACKENDS)}")
    if backend == "host-gw" and len(underlays) > 1:
        # host-gw routes each node's pods via that node's address: only a neighbour can be a gateway
        raise SpecError(f"{where}.backend: host-gw needs every node on one underlay; with several, use vxlan")
    net = Network(
        cluster_cidr=_cidr(data.get("clusterCIDR", d.cluster_cidr), f"{where}.clusterCIDR"),
        service_cidr=_cidr(data.get("serviceCIDR", d.service_cidr), f"{where}.serviceCIDR"),
        node_subnet_size=_int(data.get("nodeSubnetSize", d.node_subnet_size), f"{where}.nodeSubnetSize", 8, 30),
        underlay_cidr=_cidr(underlay_cidr, f"{where}.underlayCIDR"),
        proxy_mode=data.get("proxyMode", d.proxy_mode),
        backend=backend,
        underlays=underlays,
    )
    if net.proxy_mode not in PROXY_MODES:
        raise SpecError(f"{where}.proxyMode: {net.proxy_mode!r} is not one of {', '.join(PROXY_MODES)}")
    if ipaddress.ip_network(net.cluster_cidr).prefixlen > net.node_subnet_size:
        raise SpecError(
            f"{where}.nodeSubnetSize: /{net.node_subnet_size} is larger than clusterCIDR {net.cluster_cidr}"
        )
    nets = {"clusterCIDR": net.cluster_cidr, "serviceCIDR": net.service_cidr}
    if underlays:
        nets.update({f"underlays[{i}].cidr": u.cidr for i, u in enumerate(underlays)})
    else:
        nets["underlayCIDR"] = net.underlay_cidr
    items = list(nets.items())
    for i, (a, x) in enumerate(items):
        for b, y in items[i + 1 :]:
            if ipaddress.ip_network(x).overlaps(ipaddress.ip_network(y)):
                raise SpecError(f"{where}.{b}: {y} overlaps {a} {x}")
    return net


def parse_workload(data, where: str) -> Workload:
    data = _mapping(data, where)
    _unknown(data, {"kind", "port", "backend", "command"}, where)
    kind = data.get("kind", "http")
    if kind not in WORKLOAD_KINDS:
        raise SpecError(f"{where}.kind: {kind!r} is not one of {', '.join(WORKLOAD_KINDS)}")
    command = data.get("command") or []
    if kind == "command":
        if not command or not isinstance(command, list) or not all(isinstance(c, str) for c in command):
            raise SpecError(f"{where}.command: a command workload needs an argument list of strings")
    elif command:
        raise SpecError(f"{where}.command: only a workload of kind 'command' runs a command")
    backend = data.get("backend")
    if backend is not None:
        _name(backend, f"{where}.backend")
    return Workload(
        kind=kind,
        port=_int(data.get("port", 8080), f"{where}.port", 1, 65535),
        backend=backend,
        command=tuple(command),
    )


def parse_deployment(data, where: str) -> Deployment:
    data = _mapping(data, where)
    _unknown(data, {"kind", "name", "replicas", "labels", "version", "workload"}, where)
    name = _name(data.get("name"), f"{where}.name")
    labels = _labels(data.get("labels"), f"{where}.labels") or {"app": name}
    version = str(data.get("version", "v1"))
    if not NAME.fullmatch(version):
        raise SpecError(f"{where}.version: {version!r} is not a valid version (lowercase letters, digits, '-')")
    return Deployment(
        name=name,
        replicas=_int(data.get("replicas", 1), f"{where}.replicas", 0, 5000),
        labels=labels,
        version=version,
        workload=parse_workload(data.get("workload"), f"{where}.workload"),
    )


def parse_service(data, where: str) -> Service:
    data = _mapping(data, where)
    _unknown(data, {"kind", "name", "type", "selector", "ports", "clusterIP"}, where)
    name = _name(data.get("name"), f"{where}.name")
    stype = data.get("type", "ClusterIP")
    if stype not in SERVICE_TYPES:
        raise SpecError(f"{where}.type: {stype!r} is not one of {', '.join(SERVICE_TYPES)}")
    selector = _labels(data.get("selector"), f"{where}.selector")
    if not selector:
        raise SpecError(f"{where}.selector: a Service needs a selector")
    raw_ports = data.get("ports")
    if not isinstance(raw_ports, list) or not raw_ports:
        raise SpecError(f"{where}.ports: a Service needs a list of ports")
    ports = []
    for i, p in enumerate(raw_ports):
        pw = f"{where}.ports[{i}]"
        p = _mapping(p, pw)
        _unknown(p, {"name", "port", "targetPort", "nodePort", "protocol"}, pw)
        port = _int(p.get("port"), f"{pw}.port", 1, 65535)
        node_port = p.get("nodePort")
        if node_port is not None:
            if stype != "NodePort":
                raise SpecError(f"{pw}.nodePort: only a Service of type NodePort has node ports")
            _int(node_port, f"{pw}.nodePort", *NODEPORT_RANGE)
        protocol = p.get("protocol", "TCP")
        if protocol != "TCP":
            raise SpecError(f"{pw}.protocol: lab workloads speak TCP only, not {protocol!r}")
        ports.append(
            ServicePort(
                port=port,
                target_port=_int(p.get("targetPort", port), f"{pw}.targetPort", 1, 65535),
                node_port=node_port,
                name=str(p.get("name", "")),
            )
        )
    cluster_ip = data.get("clusterIP")
    if cluster_ip is not None:
        try:
            cluster_ip = str(ipaddress.ip_address(cluster_ip))
        except ValueError:
            raise SpecError(f"{where}.clusterIP: {cluster_ip!r} is not an IP address") from None
    return Service(name=name, selector=selector, ports=tuple(ports), type=stype, cluster_ip=cluster_ip)


def _list(value, where: str) -> list:
    if value is None:
        return []
    if not isinstance(value, list):
        raise SpecError(f"{where}: expected a list, got {type(value).__name__}")
    return value


def _bounded(value, where: str, limit: int) -> list:
    items = _list(value, where)
    if len(items) > limit:
        raise SpecError(f"{where}: {len(items)} entries, more than the limit of {limit}")
    return items


def parse(data) -> LabSpec:
    data = _mapping(data, "lab")
    _unknown(data, {"name", "nodes", "network", "deployments", "services"}, "lab")
    name = _name(data.get("name", "lab"), "name")
    if len(name) > MAX_LAB_NAME:
        raise SpecError(f"name: {name!r} is longer than {MAX_LAB_NAME} characters")
    nodes = tuple(_name(n, f"nodes[{i}]") for i, n in enumerate(_bounded(data.get("nodes"), "nodes", MAX_NODES)))
    spec = LabSpec(
        name=name,
        nodes=nodes,
        network=parse_network(data.get("network")),
        deployments=tuple(
            parse_deployment(d, f"deployments[{i}]")
            for i, d in enumerate(_bounded(data.get("deployments"), "deployments", MAX_DEPLOYMENTS))
        ),
        services=tuple(
            parse_service(s, f"services[{i}]")
            for i, s in enumerate(_bounded(data.get("services"), "services", MAX_SERVICES))
        ),
    )
    return check(spec)


def check(spec: LabSpec) -> LabSpec:
    """Whole-lab rules: unique names, addresses that fit, ports that do not clash."""
    if not spec.nodes:
        raise SpecError("nodes: a lab needs at least one node")
    for what, names in (
        ("nodes", spec.nodes),
        ("deployments", [d.name for d in spec.deployments]),
        ("services", [s.name for s in spec.services]),
    ):
        seen: set[str] = set()  # one pass: the old count() per name was quadratic
        for n in names:
            if n in seen:
                raise SpecError(f"{what}: {n!r} appears twice")
            seen.add(n)
    pods = sum(d.replicas for d in spec.deployments)
    if pods > MAX_PODS:
        raise SpecError(f"deployments: {pods} replicas in all, more than the limit of {MAX_PODS}")
    net = spec.network
    placed = [n for u in net.underlays for n in u.nodes]
    for i, u in enumerate(net.underlays):
        for n in u.nodes:
            if n not in spec.nodes:
                raise SpecError(f"network.underlays[{i}].nodes: {n!r} is not one of the lab's nodes")
            if placed.count(n) > 1:
                raise SpecError(f"network.underlays[{i}].nodes: {n!r} is on two underlays")
    if net.underlays and (missing := [n for n in spec.nodes if n not in placed]):
        raise SpecError(f"network.underlays: node {missing[0]!r} is on none of them")
    for i, seg in enumerate(spec.segments()):
        if ipaddress.ip_network(seg.cidr).num_addresses - 2 < len(seg.nodes) + 1:
            where = f"network.underlays[{i}].cidr" if net.underlays else "network.underlayCIDR"
            raise SpecError(f"{where}: {seg.cidr} has too few addresses for {len(seg.nodes)} nodes")
    cluster = ipaddress.ip_network(net.cluster_cidr)
    if 2 ** (net.node_subnet_size - cluster.prefixlen) < len(spec.nodes):
        raise SpecError(
            f"network.nodeSubnetSize: {net.cluster_cidr} holds fewer than {len(spec.nodes)} /{net.node_subnet_size}"
        )
    service_net = ipaddress.ip_network(net.service_cidr)
    node_ports: dict[int, str] = {}
    for i, s in enumerate(spec.services):
        if s.cluster_ip and ipaddress.ip_address(s.cluster_ip) not in service_net:
            raise SpecError(f"services[{i}].clusterIP: {s.cluster_ip} is outside serviceCIDR {net.service_cidr}")
        for p in s.ports:
            if p.node_port is not None:
                if p.node_port in node_ports:
                    raise SpecError(
                        f"services[{i}].nodePort: {p.node_port} is already used by {node_ports[p.node_port]}"
                    )
                node_ports[p.node_port] = s.name
    for i, d in enumerate(spec.deployments):
        if d.workload.backend and not spec.service(d.workload.backend):
            raise SpecError(f"deployments[{i}].workload.backend: no Service named {d.workload.backend!r}")
    return spec


# -- serialising: frozen values -> the same YAML dictionaries ------------------------------
def workload_dict(w: Workload) -> dict:
    out: dict = {"kind": w.kind, "port": w.port}
    if w.backend:
        out["backend"] = w.backend
    if w.command:
        out["command"] = list(w.command)
    return out


def deployment_dict(d: Deployment) -> dict:
    return {
        "name": d.name,
        "replicas": d.replicas,
        "labels": dict(d.labels),
        "version": d.version,
        "workload": workload_dict(d.workload),
    }


def service_dict(s: Service) -> dict:
    out: dict = {"name": s.name, "type": s.type, "selector": dict(s.selector), "ports": []}
    for p in s.ports:
        port: dict = {"port": p.port, "targetPort": p.target_port}
        if p.node_port is not None:
            port["nodePort"] = p.node_port
        if p.name:
            port["name"] = p.name
        out["ports"].append(port)
    if s.cluster_ip:
        out["clusterIP"] = s.cluster_ip
    return out


def to_dict(spec: LabSpec) -> dict:
    n = spec.network
    return {
        "name": spec.name,
        "nodes": list(spec.nodes),
        "network": {
            "clusterCIDR": n.cluster_cidr,
            "serviceCIDR": n.service_cidr,
            "nodeSubnetSize": n.node_subnet_size,
            **(
                {"underlays": [{"cidr": u.cidr, "nodes": list(u.nodes)} for u in n.underlays]}
                if n.underlays
                else {"underlayCIDR": n.underlay_cidr}
            ),
            "proxyMode": n.proxy_mode,
            "backend": n.backend,
        },
        "deployments": [deployment_dict(d) for d in spec.deployments],
        "services": [service_dict(s) for s in spec.services],
    }


def _documents(path: str) -> list:
    """The file's YAML documents, read and parsed within the limits; any refusal names the file."""
    try:
        return list(safeload.yaml_documents(safeload.read_text(path, LIMITS), path, LIMITS))
    except safeload.LoadError as e:
        raise SpecError(str(e)) from None


def load(path: str) -> LabSpec:
    docs = _documents(path)
    if len(docs) > 1:
        raise SpecError(f"{path}: holds {len(docs)} YAML documents; a topology is one")
    data = docs[0] if docs else None
    try:
        return parse(data)
    except SpecError as e:
        raise SpecError(f"{path}: {e}") from None


def load_objects(path: str) -> list[Deployment | Service]:
    """`lab apply -f`: YAML documents of `kind: Deployment` or `kind: Service`."""
    docs = [d for d in _documents(path) if d is not None]
    objects: list[Deployment | Service] = []
    for i, doc in enumerate(docs):
        where = f"{path}: document {i + 1}"
        kind = _mapping(doc, where).get("kind")
        if kind == "Deployment":
            objects.append(parse_deployment(doc, where))
        elif kind == "Service":
            objects.append(parse_service(doc, where))
        else:
            raise SpecError(f"{where}.kind: {kind!r} is not Deployment or Service")
    return objects


# The topologies and manifests of netns-labs/ ship as the package podnet.netns_labs.
TOPOLOGIES = "podnet.netns_labs"


def packaged(filename: str) -> str:
    """The text of a file of netns-labs/, from whatever install of podnet this is."""
    return importlib.resources.files(TOPOLOGIES).joinpath(filename).read_text()


def tutorial_data() -> dict:
    """netns-labs/tutorial.yaml as the dictionaries a person writes (a fresh copy each call)."""
    return safeload.load_yaml(packaged("tutorial.yaml"), "tutorial.yaml", LIMITS)


def default() -> LabSpec:
    """The tutorial cluster: `podnet lab up` with no file."""
    return parse(tutorial_data())


def check_name(value, where: str) -> str:
    """A lab, node or object name as the spec accepts it (for names given on a command line)."""
    name = _name(value, where)
    if len(name) > MAX_LAB_NAME:
        raise SpecError(f"{where}: {name!r} is longer than {MAX_LAB_NAME} characters")
    return name
