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
from typing import Any

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
WORKLOAD_KINDS = ("http", "counter", "command", "dns")
SERVICE_TYPES = ("ClusterIP", "NodePort", "LoadBalancer")
PROTOCOLS = ("TCP", "UDP")
DEFAULT_NAMESPACE = "default"
SYSTEM_NAMESPACES = ("default", "kube-system")
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
    # type: LoadBalancer addresses, on the first underlay; None: its upper quarter
    lb_pool: str | None = None


@dataclass(frozen=True)
class Workload:
    """What a pod runs: the built-in HTTP server, the shared counter, or a command."""

    kind: str = "http"
    port: int = 8080
    backend: str | None = None  # a Service the http workload calls for the shared count
    command: tuple[str, ...] = ()
    env: tuple[tuple[str, str], ...] = ()
    named_ports: tuple[tuple[str, int], ...] = ()  # the container's named ports (targetPort by name)


@dataclass(frozen=True)
class Probe:
    """A kubelet probe: httpGet (path, port), tcpSocket (port) or exec (command)."""

    kind: str  # "httpGet", "tcpSocket", "exec"
    port: int = 0
    path: str = "/"
    command: tuple[str, ...] = ()
    initial_delay: float = 0.0
    period: float = 10.0
    timeout: float = 1.0
    success_threshold: int = 1
    failure_threshold: int = 3


@dataclass(frozen=True)
class Deployment:
    name: str
    replicas: int = 1
    labels: dict[str, str] = field(default_factory=dict)
    version: str = "v1"
    workload: Workload = Workload()
    namespace: str = DEFAULT_NAMESPACE
    image: str = ""  # the manifest's image (the workload is what runs; see manifests.py)
    container: str = ""  # the container's name, for `set image deploy/NAME CONTAINER=IMAGE`
    max_surge: int | str = 1  # an absolute number or a percentage of replicas ("25%")
    max_unavailable: int | str = 0
    readiness: Probe | None = None
    liveness: Probe | None = None
    restarted_at: str = ""  # the template's kubectl.kubernetes.io/restartedAt (`rollout restart`)
    bare: bool = False  # a bare Pod (kind: Pod): its one pod is named as it, and never replaced

    def template_hash(self) -> str:
        """Identifies one revision of the pod template, as kube's pod-template-hash does."""
        body: dict[str, Any] = {"v": self.version, "w": asdict(self.workload), "l": self.labels}
        extra: dict[str, Any] = {"i": self.image, "r": self.readiness and asdict(self.readiness)}
        extra["lv"] = self.liveness and asdict(self.liveness)
        extra["ra"] = self.restarted_at
        size = 5  # a lab-dialect deployment keeps the hash it always had
        if any(extra.values()):  # a manifest's: ten characters, as kube's pod-template-hash
            body.update(extra, e=self.workload.env)
            size = 10
        return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:size]

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"

    def rollout_bounds(self) -> tuple[int, int]:
        """(maxSurge, maxUnavailable) in pods, as kube resolves percentages: surge rounds up,
        unavailability down; both zero would stall, so surge is then one."""
        surge = _scaled(self.max_surge, self.replicas, up=True)
        unavailable = _scaled(self.max_unavailable, self.replicas, up=False)
        return (surge or (0 if unavailable else 1)), unavailable


def _scaled(value: int | str, replicas: int, up: bool) -> int:
    if isinstance(value, int):
        return value
    pct = int(value.rstrip("%"))
    return -(-pct * replicas // 100) if up else pct * replicas // 100


@dataclass(frozen=True)
class ServicePort:
    port: int
    target_port: int | str  # a number, or the name of a container port
    node_port: int | None = None
    name: str = ""
    protocol: str = "TCP"


@dataclass(frozen=True)
class Service:
    name: str
    selector: dict[str, str]
    ports: tuple[ServicePort, ...]
    type: str = "ClusterIP"
    cluster_ip: str | None = None  # "None": headless (no ClusterIP; DNS names the pods)
    namespace: str = DEFAULT_NAMESPACE
    session_affinity: str = "None"
    external_traffic_policy: str = "Cluster"

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"

    @property
    def headless(self) -> bool:
        return self.cluster_ip == "None"


@dataclass(frozen=True)
class LabSpec:
    name: str
    nodes: tuple[str, ...]
    network: Network = Network()
    deployments: tuple[Deployment, ...] = ()
    services: tuple[Service, ...] = ()
    namespaces: tuple[str, ...] = SYSTEM_NAMESPACES

    def deployment(self, name: str, namespace: str = DEFAULT_NAMESPACE) -> Deployment | None:
        return next((d for d in self.deployments if d.name == name and d.namespace == namespace), None)

    def service(self, name: str, namespace: str = DEFAULT_NAMESPACE) -> Service | None:
        return next((s for s in self.services if s.name == name and s.namespace == namespace), None)

    def with_deployment(self, dep: Deployment) -> LabSpec:
        others = tuple(d for d in self.deployments if d.key != dep.key)
        return replace(self, deployments=(*others, dep))

    def segments(self) -> tuple[Underlay, ...]:
        """Every underlay segment with its nodes, in order (one segment unless split)."""
        return self.network.underlays or (Underlay(self.network.underlay_cidr, self.nodes),)

    def with_service(self, svc: Service) -> LabSpec:
        others = tuple(s for s in self.services if s.key != svc.key)
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
    known.add("loadBalancerPool")
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
        lb_pool=_cidr(data["loadBalancerPool"], f"{where}.loadBalancerPool") if data.get("loadBalancerPool") else None,
    )
    if net.lb_pool and not ipaddress.ip_network(net.lb_pool).subnet_of(ipaddress.ip_network(net.underlay_cidr)):  # type: ignore[arg-type]
        raise SpecError(f"{where}.loadBalancerPool: {net.lb_pool} is not inside the underlay {net.underlay_cidr}")
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
    _unknown(data, {"kind", "port", "backend", "command", "env", "namedPorts"}, where)
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
    if backend is not None and (not isinstance(backend, str) or not HOST.fullmatch(backend)):
        raise SpecError(f"{where}.backend: {backend!r} is not a Service name (NAME, NAME.NAMESPACE or NAME:PORT)")
    env = _mapping(data.get("env"), f"{where}.env")
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in env.items()):
        raise SpecError(f"{where}.env: names and values must be strings")
    return Workload(
        kind=kind,
        # 0: a command that declares no port (a client, `sleep`): started once it runs
        port=_int(data.get("port", 8080), f"{where}.port", 0 if kind == "command" else 1, 65535),
        backend=backend,
        command=tuple(command),
        env=tuple(sorted(env.items())),
        named_ports=tuple(
            (_name(n, f"{where}.namedPorts"), _int(p, f"{where}.namedPorts.{n}", 1, 65535))
            for n, p in _mapping(data.get("namedPorts"), f"{where}.namedPorts").items()
        ),
    )


def parse_probe(data, where: str) -> Probe | None:
    """A probe as the lab stores it (manifests.py turns a manifest's probe into this)."""
    if data is None:
        return None
    data = _mapping(data, where)
    known = {"kind", "port", "path", "command", "initialDelaySeconds", "periodSeconds", "timeoutSeconds"}
    _unknown(data, known | {"successThreshold", "failureThreshold"}, where)
    kind = data.get("kind")
    if kind not in ("httpGet", "tcpSocket", "exec"):
        raise SpecError(f"{where}.kind: {kind!r} is not one of httpGet, tcpSocket, exec")
    command = data.get("command") or []
    if (
        not isinstance(command, list)
        or not all(isinstance(c, str) for c in command)
        or (kind == "exec") != bool(command)
    ):
        raise SpecError(f"{where}.command: an exec probe, and only that, has an argument list of strings")
    path = data.get("path", "/")
    if not isinstance(path, str) or not path.startswith("/") or len(path) > 1024 or not path.isprintable():
        raise SpecError(f"{where}.path: {str(path)[:80]!r} is not an HTTP path")
    return Probe(
        kind=kind,
        port=_int(data.get("port", 0), f"{where}.port", 0 if kind == "exec" else 1, 65535),
        path=path,
        command=tuple(command),
        initial_delay=_int(data.get("initialDelaySeconds", 0), f"{where}.initialDelaySeconds", 0, 3600),
        period=_int(data.get("periodSeconds", 10), f"{where}.periodSeconds", 1, 3600),
        timeout=_int(data.get("timeoutSeconds", 1), f"{where}.timeoutSeconds", 1, 3600),
        success_threshold=_int(data.get("successThreshold", 1), f"{where}.successThreshold", 1, 100),
        failure_threshold=_int(data.get("failureThreshold", 3), f"{where}.failureThreshold", 1, 100),
    )


def probe_dict(p: Probe) -> dict:
    out: dict = {"kind": p.kind, "path": p.path, "port": p.port, "command": list(p.command)}
    out.update(initialDelaySeconds=int(p.initial_delay), periodSeconds=int(p.period), timeoutSeconds=int(p.timeout))
    out.update(successThreshold=p.success_threshold, failureThreshold=p.failure_threshold)
    return out


PERCENT = re.compile(r"(100|[1-9]?[0-9])%")
HOST = re.compile(r"[a-z0-9]([a-z0-9.-]*[a-z0-9])?(:[0-9]{1,5})?")


def _surge(value, where: str) -> int | str:
    if isinstance(value, str) and PERCENT.fullmatch(value):
        return value
    return _int(value, where, 0, 5000)


def _namespace(value, where: str) -> str:
    if value is None:
        return DEFAULT_NAMESPACE
    name = _name(value, where)
    if len(name) > 63:
        raise SpecError(f"{where}: {name!r} is longer than 63 characters")
    return name


def parse_deployment(data, where: str) -> Deployment:
    data = _mapping(data, where)
    known = {"kind", "name", "replicas", "labels", "version", "workload", "namespace", "image", "container"}
    known |= {"maxSurge", "maxUnavailable", "readinessProbe", "livenessProbe", "restartedAt", "bare"}
    _unknown(data, known, where)
    name = _name(data.get("name"), f"{where}.name")
    bare = data.get("bare", False) is True
    labels = _labels(data.get("labels"), f"{where}.labels") or ({} if bare else {"app": name})
    version = str(data.get("version", "v1"))
    if not LABEL_VALUE.fullmatch(version) or not version or len(version) > 63:
        raise SpecError(f"{where}.version: {version!r} is not a valid version (letters, digits, '-', '_', '.')")
    image = data.get("image", "")
    if not isinstance(image, str) or len(image) > 512 or not image.isprintable() or " " in image:
        raise SpecError(f"{where}.image: {str(image)[:80]!r} is not an image reference")
    container = data.get("container", "")
    if container:
        _name(container, f"{where}.container")
    surge = _surge(data.get("maxSurge", 1), f"{where}.maxSurge")
    unavailable = _surge(data.get("maxUnavailable", 0), f"{where}.maxUnavailable")
    if surge in (0, "0%") and unavailable in (0, "0%"):
        raise SpecError(f"{where}.maxUnavailable: may not be 0 when maxSurge is 0")
    return Deployment(
        name=name,
        replicas=_int(data.get("replicas", 1), f"{where}.replicas", 0, 5000),
        labels=labels,
        version=version,
        workload=parse_workload(data.get("workload"), f"{where}.workload"),
        namespace=_namespace(data.get("namespace"), f"{where}.namespace"),
        image=image,
        container=container,
        max_surge=surge,
        max_unavailable=unavailable,
        readiness=parse_probe(data.get("readinessProbe"), f"{where}.readinessProbe"),
        liveness=parse_probe(data.get("livenessProbe"), f"{where}.livenessProbe"),
        restarted_at=_restarted_at(data.get("restartedAt", ""), f"{where}.restartedAt"),
        bare=bare,
    )


def _restarted_at(value, where: str) -> str:
    if not isinstance(value, str) or len(value) > 64 or not value.isprintable():
        raise SpecError(f"{where}: {str(value)[:80]!r} is not a timestamp")
    return value


def parse_service(data, where: str) -> Service:
    data = _mapping(data, where)
    known = {"kind", "name", "type", "selector", "ports", "clusterIP", "namespace"}
    _unknown(data, known | {"sessionAffinity", "externalTrafficPolicy"}, where)
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
            if stype == "ClusterIP":
                raise SpecError(f"{pw}.nodePort: only a Service of type NodePort or LoadBalancer has node ports")
            _int(node_port, f"{pw}.nodePort", *NODEPORT_RANGE)
        protocol = p.get("protocol", "TCP")
        if protocol not in PROTOCOLS:
            raise SpecError(f"{pw}.protocol: {protocol!r} is not one of {', '.join(PROTOCOLS)}")
        target = p.get("targetPort", port)
        if isinstance(target, str):
            if not NAME.fullmatch(target) or len(target) > 15:
                raise SpecError(f"{pw}.targetPort: {target[:80]!r} is neither a port number nor a port name")
        else:
            target = _int(target, f"{pw}.targetPort", 1, 65535)
        pname = p.get("name", "")
        if pname and (not isinstance(pname, str) or not NAME.fullmatch(pname) or len(pname) > 63):
            raise SpecError(f"{pw}.name: {str(pname)[:80]!r} is not a valid port name")
        ports.append(ServicePort(port=port, target_port=target, node_port=node_port, name=pname, protocol=protocol))
    if len(ports) > 1 and not all(p.name for p in ports):
        raise SpecError(f"{where}.ports: when a Service has several ports, each needs a name")
    affinity = data.get("sessionAffinity", "None")
    if affinity not in ("None", "ClientIP"):
        raise SpecError(f"{where}.sessionAffinity: {affinity!r} is not one of None, ClientIP")
    etp = data.get("externalTrafficPolicy", "Cluster")
    if etp not in ("Cluster", "Local"):
        raise SpecError(f"{where}.externalTrafficPolicy: {etp!r} is not one of Cluster, Local")
    if etp == "Local" and stype == "ClusterIP":
        raise SpecError(f"{where}.externalTrafficPolicy: only a NodePort or LoadBalancer Service has one")
    cluster_ip = data.get("clusterIP")
    if cluster_ip == "None":
        if stype != "ClusterIP":
            raise SpecError(f"{where}.clusterIP: a headless Service (None) must be of type ClusterIP")
    elif cluster_ip is not None:
        try:
            cluster_ip = str(ipaddress.ip_address(cluster_ip))
        except ValueError:
            raise SpecError(f"{where}.clusterIP: {cluster_ip!r} is not an IP address") from None
    return Service(
        name=name,
        selector=selector,
        ports=tuple(ports),
        type=stype,
        cluster_ip=cluster_ip,
        namespace=_namespace(data.get("namespace"), f"{where}.namespace"),
        session_affinity=affinity,
        external_traffic_policy=etp,
    )


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
    _unknown(data, {"name", "nodes", "network", "deployments", "services", "namespaces", "workloads"}, "lab")
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
        namespaces=tuple(
            dict.fromkeys(
                [*SYSTEM_NAMESPACES]
                + [
                    _namespace(n, f"namespaces[{i}]")
                    for i, n in enumerate(_bounded(data.get("namespaces"), "namespaces", MAX_SERVICES))
                ]
            )
        ),
    )
    if data.get("workloads") is not None:
        # Kubernetes manifests, as `lab apply -f` takes them (manifests.py)
        from podnet.lab import manifests

        objs = manifests.parse_objects(
            _bounded(data["workloads"], "workloads", MAX_DEPLOYMENTS + MAX_SERVICES), "workloads"
        )
        spec = manifests.merge(spec, objs)
    return check(spec)


def check(spec: LabSpec) -> LabSpec:
    """Whole-lab rules: unique names, addresses that fit, ports that do not clash."""
    if not spec.nodes:
        raise SpecError("nodes: a lab needs at least one node")
    for what, names in (
        ("nodes", spec.nodes),
        ("deployments", [d.key for d in spec.deployments]),
        ("services", [s.key for s in spec.services]),
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
        if s.cluster_ip and not s.headless and ipaddress.ip_address(s.cluster_ip) not in service_net:
            raise SpecError(f"services[{i}].clusterIP: {s.cluster_ip} is outside serviceCIDR {net.service_cidr}")
        for p in s.ports:
            if p.node_port is not None:
                if p.node_port in node_ports:
                    raise SpecError(
                        f"services[{i}].nodePort: {p.node_port} is already used by {node_ports[p.node_port]}"
                    )
                node_ports[p.node_port] = s.name
    for i, d in enumerate(spec.deployments):
        backend = d.workload.backend
        # a plain name is a Service of the lab's (checked); NAME.NS or NAME:PORT are for DNS to find
        if backend and "." not in backend and ":" not in backend and not spec.service(backend, d.namespace):
            raise SpecError(f"deployments[{i}].workload.backend: no Service named {backend!r}")
        if d.namespace not in spec.namespaces:
            raise SpecError(f"deployments[{i}].namespace: namespace {d.namespace!r} does not exist")
    for i, s in enumerate(spec.services):
        if s.namespace not in spec.namespaces:
            raise SpecError(f"services[{i}].namespace: namespace {s.namespace!r} does not exist")
    return spec


# -- serialising: frozen values -> the same YAML dictionaries ------------------------------
def workload_dict(w: Workload) -> dict:
    out: dict = {"kind": w.kind, "port": w.port}
    if w.backend:
        out["backend"] = w.backend
    if w.command:
        out["command"] = list(w.command)
    if w.env:
        out["env"] = dict(w.env)
    if w.named_ports:
        out["namedPorts"] = dict(w.named_ports)
    return out


def deployment_dict(d: Deployment) -> dict:
    out = {
        "name": d.name,
        "replicas": d.replicas,
        "labels": dict(d.labels),
        "version": d.version,
        "workload": workload_dict(d.workload),
    }
    # what only manifests give: written only when set, so a lab-dialect file round-trips as it was
    if d.namespace != DEFAULT_NAMESPACE:
        out["namespace"] = d.namespace
    for key, value, default in (
        ("image", d.image, ""),
        ("container", d.container, ""),
        ("maxSurge", d.max_surge, 1),
        ("maxUnavailable", d.max_unavailable, 0),
        ("restartedAt", d.restarted_at, ""),
        ("bare", d.bare, False),
    ):
        if value != default:
            out[key] = value
    if d.readiness:
        out["readinessProbe"] = probe_dict(d.readiness)
    if d.liveness:
        out["livenessProbe"] = probe_dict(d.liveness)
    return out


def service_dict(s: Service) -> dict:
    out: dict = {"name": s.name, "type": s.type, "selector": dict(s.selector), "ports": []}
    for p in s.ports:
        port: dict = {"port": p.port, "targetPort": p.target_port}
        if p.node_port is not None:
            port["nodePort"] = p.node_port
        if p.name:
            port["name"] = p.name
        if p.protocol != "TCP":
            port["protocol"] = p.protocol
        out["ports"].append(port)
    if s.cluster_ip:
        out["clusterIP"] = s.cluster_ip
    if s.namespace != DEFAULT_NAMESPACE:
        out["namespace"] = s.namespace
    if s.session_affinity != "None":
        out["sessionAffinity"] = s.session_affinity
    if s.external_traffic_policy != "Cluster":
        out["externalTrafficPolicy"] = s.external_traffic_policy
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
            **({"loadBalancerPool": n.lb_pool} if n.lb_pool else {}),
        },
        "deployments": [deployment_dict(d) for d in spec.deployments],
        "services": [service_dict(s) for s in spec.services],
        **({"namespaces": list(spec.namespaces)} if spec.namespaces != SYSTEM_NAMESPACES else {}),
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
