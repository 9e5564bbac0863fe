"""Kubernetes objects the proxy reads: v1 Service, discovery.k8s.io/v1 EndpointSlice, v1 Node and
networking.k8s.io/v1 ServiceCIDR, parsed from YAML/JSON into frozen dataclasses.

Parsing applies the defaults the API server would have applied (protocol TCP, namespace
"default", ready/serving conditions unknown = true, affinity timeout 10800 s …) and is lenient
where Kubernetes is lenient: IPv4 addresses with leading zeros (`172.30.0.041`) are accepted,
as Kubernetes' own validation still does for old objects, and normalised (to decimal, as Go's
net.ParseIP reads them). Anything invalid raises ObjectError naming the file, object and field.

Every field is validated as the API server validates it (names as DNS-1123/1035 labels or
subdomains, label values, IPs, port ranges, enum values) before a model sees it: names end up
in chain names, set names and rule comments, so text the API server would never have accepted
(a newline, a quote) must never get that far. Files are read through `safeload`, with its
limits on size, depth and aliases.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import safeload

PROTOCOLS = ("TCP", "UDP", "SCTP")
DEFAULT_AFFINITY_TIMEOUT = 10800
SERVICE_NAME_LABEL = "kubernetes.io/service-name"
ZONE_LABEL = "topology.kubernetes.io/zone"

# k8s.io/apimachinery/pkg/util/validation, matched as whole strings (fullmatch: `$` would let a
# trailing newline through)
DNS1123_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")  # at most 63
DNS1035_LABEL = re.compile(r"[a-z]([-a-z0-9]*[a-z0-9])?")  # at most 63; Service names
DNS1123_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")  # at most 253
LABEL_VALUE = re.compile(r"([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?")  # at most 63
MAX_ITEMS = 10_000  # ports, endpoints, addresses … of one object: far above any real one


class ObjectError(ValueError):
    """An object (or file) that cannot be used; it is logged and skipped."""

    def __init__(self, where: str, field_path: str, problem: str):
        self.where = where
        self.field = field_path
        self.problem = problem
        super().__init__(f"{where}: {field_path}: {problem}" if field_path else f"{where}: {problem}")


@dataclass(frozen=True)
class ServicePort:
    name: str
    protocol: str
    port: int
    node_port: int = 0


@dataclass(frozen=True)
class Service:
    namespace: str
    name: str
    type: str = "ClusterIP"
    cluster_ips: tuple[str, ...] = ()
    ports: tuple[ServicePort, ...] = ()
    external_ips: tuple[str, ...] = ()
    load_balancer_ips: tuple[str, ...] = ()
    load_balancer_source_ranges: tuple[str, ...] = ()
    session_affinity_seconds: int = 0  # 0: no affinity
    external_traffic_local: bool = False
    internal_traffic_local: bool = False
    health_check_node_port: int = 0

    @property
    def key(self) -> tuple[str, str]:
        return (self.namespace, self.name)

    @property
    def proxied(self) -> bool:
        """Headless and ExternalName Services get no rules, as in kube-proxy."""
        return self.type != "ExternalName" and bool(self.cluster_ips)


@dataclass(frozen=True)
class EndpointPort:
    name: str
    protocol: str
    port: int


@dataclass(frozen=True)
class Endpoint:
    addresses: tuple[str, ...]
    ready: bool = True
    serving: bool = True
    terminating: bool = False
    node_name: str = ""
    zone: str = ""
    zone_hints: frozenset[str] | None = None  # None: no hints at all
    node_hints: frozenset[str] | None = None


@dataclass(frozen=True)
class EndpointSlice:
    namespace: str
    name: str
    service_name: str
    address_type: str
    endpoints: tuple[Endpoint, ...] = ()
    ports: tuple[EndpointPort, ...] = ()

    @property
    def key(self) -> tuple[str, str]:
        return (self.namespace, self.name)

    @property
    def service_key(self) -> tuple[str, str]:
        return (self.namespace, self.service_name)


@dataclass(frozen=True)
class Node:
    name: str
    labels: dict = field(default_factory=dict, hash=False, compare=True)
    addresses: tuple[str, ...] = ()


@dataclass(frozen=True)
class ServiceCIDR:
    name: str
    cidrs: tuple[str, ...] = ()


KubeObject = Service | EndpointSlice | Node | ServiceCIDR


# ---------------------------------------------------------------- field readers


class _Reader:
    """Reads fields of one object, naming the field in every error."""

    def __init__(self, where: str):
        self.where = where

    def fail(self, path: str, problem: str) -> ObjectError:
        return ObjectError(self.where, path, problem)

    def mapping(self, value, path: str) -> dict:
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise self.fail(path, f"must be an object, got {type(value).__name__}")
        return value

    def seq(self, value, path: str) -> list:
        if value is None:
            return []
        if not isinstance(value, list):
            raise self.fail(path, f"must be a list, got {type(value).__name__}")
        if len(value) > MAX_ITEMS:
            raise self.fail(path, f"{len(value)} items, more than {MAX_ITEMS}")
        return value

    def name(self, value, path: str, pattern: re.Pattern[str], limit: int, what: str, default: str = "") -> str:
        """A name as the API server validates it, or "" for an optional one left out (the
        callers say which are required); the message shows the value escaped."""
        text = self.string(value, path, default)
        if not text:
            return ""
        if len(text) > limit or not pattern.fullmatch(text):
            raise self.fail(path, f"{text[:80]!r} is not a valid {what} ({_RULES[what]}, at most {limit} characters)")
        return text

    def label(self, value, path: str, what: str = "DNS-1123 label", default: str = "") -> str:
        return self.name(value, path, DNS1123_LABEL, 63, what, default)

    def string(self, value, path: str, default: str = "") -> str:
        if value is None:
            return default
        if not isinstance(value, str):
            raise self.fail(path, f"must be a string, got {value!r}")
        return value

    def boolean(self, value, path: str, default: bool) -> bool:
        if value is None:
            return default
        if not isinstance(value, bool):
            raise self.fail(path, f"must be true or false, got {value!r}")
        return value

    def port(self, value, path: str, *, required: bool = True) -> int:
        if value is None and not required:
            return 0
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.fail(path, f"must be a port number 1-65535, got {value!r}")
        if not 1 <= value <= 65535:
            raise self.fail(path, f"port {value} out of range 1-65535")
        return value

    def protocol(self, value, path: str) -> str:
        proto = self.string(value, path, "TCP")
        if proto not in PROTOCOLS:
            raise self.fail(path, f"unknown protocol {proto!r} (TCP, UDP or SCTP)")
        return proto

    def ip(self, value, path: str) -> str:
        text = self.string(value, path)
        try:
            return parse_ip(text)
        except ValueError:
            raise self.fail(path, f"invalid IP address {text!r}") from None

    def cidr(self, value, path: str) -> str:
        text = self.string(value, path).strip()
        try:
            return str(ipaddress.ip_network(text, strict=False))
        except ValueError:
            pass
        addr, _, bits = text.partition("/")
        try:
            return str(ipaddress.ip_network(f"{parse_ip(addr)}/{bits}", strict=False))
        except ValueError:
            raise self.fail(path, f"invalid CIDR {text!r}") from None


_RULES = {
    "DNS-1123 label": "lowercase letters, digits and '-', starting and ending with a letter or digit",
    "DNS-1035 label": "lowercase letters, digits and '-', starting with a letter, ending with a letter or digit",
    "DNS-1123 subdomain": "DNS-1123 labels joined by '.'",
    "label value": "letters, digits, '-', '_' and '.', starting and ending with a letter or digit",
}


def parse_ip(text: str) -> str:
    """An IP address in canonical form; IPv4 octets with leading zeros are read as decimal, as
    Kubernetes (Go's legacy net.ParseIP) reads them."""
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        parts = text.split(".")
        if len(parts) == 4 and all(p.isdigit() and 0 < len(p) <= 4 for p in parts):
            return str(ipaddress.IPv4Address(".".join(str(int(p, 10)) for p in parts)))
        raise


def ip_family(address: str) -> int:
    """4 or 6, for an address already in canonical form."""
    return 6 if ":" in address else 4


# ---------------------------------------------------------------- objects


def _meta(r: _Reader, obj: dict, *, namespaced: bool, service: bool = False) -> tuple[str, str]:
    """namespace and name, as ValidateObjectMeta checks them: Services are named by DNS-1035
    labels, namespaces by DNS-1123 labels, everything else here by DNS-1123 subdomains."""
    meta = r.mapping(obj.get("metadata"), "metadata")
    if not meta.get("name"):
        raise r.fail("metadata.name", "missing")
    if service:
        name = r.name(meta.get("name"), "metadata.name", DNS1035_LABEL, 63, "DNS-1035 label")
    else:
        name = r.name(meta.get("name"), "metadata.name", DNS1123_SUBDOMAIN, 253, "DNS-1123 subdomain")
    namespace = r.label(meta.get("namespace"), "metadata.namespace", default="default") if namespaced else ""
    return namespace or "default", name


def parse_service(obj: dict, where: str) -> Service:
    r = _Reader(where)
    namespace, name = _meta(r, obj, namespaced=True, service=True)
    r.where = f"{where}: Service {namespace}/{name}"
    spec = r.mapping(obj.get("spec"), "spec")
    svc_type = r.string(spec.get("type"), "spec.type", "ClusterIP")
    if svc_type not in ("ClusterIP", "NodePort", "LoadBalancer", "ExternalName"):
        raise r.fail("spec.type", f"unknown type {svc_type!r}")
    cluster_ips = _cluster_ips(r, spec)
    ports = []
    for i, p in enumerate(r.seq(spec.get("ports"), "spec.ports")):
        path = f"spec.ports[{i}]"
        p = r.mapping(p, path)
        node_port = r.port(p.get("nodePort"), f"{path}.nodePort", required=False)
        ports.append(
            ServicePort(
                name=r.label(p.get("name"), f"{path}.name"),
                protocol=r.protocol(p.get("protocol"), f"{path}.protocol"),
                port=r.port(p.get("port"), f"{path}.port"),
                node_port=node_port if svc_type in ("NodePort", "LoadBalancer") else 0,
            )
        )
    _check_ports(r, ports)
    status = r.mapping(obj.get("status"), "status")
    lb = r.mapping(status.get("loadBalancer"), "status.loadBalancer")
    lb_ips = []
    for i, ing in enumerate(r.seq(lb.get("ingress"), "status.loadBalancer.ingress")):
        ing = r.mapping(ing, f"status.loadBalancer.ingress[{i}]")
        if ing.get("ip") is None:
            continue
        ip = r.ip(ing.get("ip"), f"status.loadBalancer.ingress[{i}].ip")
        ip_mode = r.string(ing.get("ipMode"), f"status.loadBalancer.ingress[{i}].ipMode", "VIP")
        if ip_mode not in ("VIP", "Proxy"):
            raise r.fail(f"status.loadBalancer.ingress[{i}].ipMode", f"must be VIP or Proxy, got {ip_mode!r}")
        # ipMode Proxy: the load balancer delivers to the node with its own source and
        # destination, so the LB IP must get no rule at all (KEP-1860)
        if ip_mode == "VIP":
            lb_ips.append(ip)
    affinity = r.string(spec.get("sessionAffinity"), "spec.sessionAffinity", "None")
    if affinity not in ("None", "ClientIP"):
        raise r.fail("spec.sessionAffinity", f"must be None or ClientIP, got {affinity!r}")
    timeout = 0
    if affinity == "ClientIP":
        cfg = r.mapping(spec.get("sessionAffinityConfig"), "spec.sessionAffinityConfig")
        client = r.mapping(cfg.get("clientIP"), "spec.sessionAffinityConfig.clientIP")
        timeout = client.get("timeoutSeconds", DEFAULT_AFFINITY_TIMEOUT)
        if isinstance(timeout, bool) or not isinstance(timeout, int) or not 1 <= timeout <= 86400:
            raise r.fail("spec.sessionAffinityConfig.clientIP.timeoutSeconds", f"must be 1-86400, got {timeout!r}")
    etp = r.string(spec.get("externalTrafficPolicy"), "spec.externalTrafficPolicy", "Cluster")
    if etp not in ("Cluster", "Local", "Global"):  # "Global" is the old spelling of Cluster
        raise r.fail("spec.externalTrafficPolicy", f"must be Cluster or Local, got {etp!r}")
    itp = r.string(spec.get("internalTrafficPolicy"), "spec.internalTrafficPolicy", "Cluster")
    if itp not in ("Cluster", "Local"):
        raise r.fail("spec.internalTrafficPolicy", f"must be Cluster or Local, got {itp!r}")
    has_external = svc_type in ("NodePort", "LoadBalancer")
    return Service(
        namespace=namespace,
        name=name,
        type=svc_type,
        cluster_ips=cluster_ips if svc_type != "ExternalName" else (),
        ports=tuple(ports),
        external_ips=tuple(
            r.ip(v, f"spec.externalIPs[{i}]") for i, v in enumerate(r.seq(spec.get("externalIPs"), "spec.externalIPs"))
        ),
        load_balancer_ips=tuple(lb_ips) if svc_type == "LoadBalancer" else (),
        load_balancer_source_ranges=tuple(
            r.cidr(v, f"spec.loadBalancerSourceRanges[{i}]")
            for i, v in enumerate(r.seq(spec.get("loadBalancerSourceRanges"), "spec.loadBalancerSourceRanges"))
        ),
        session_affinity_seconds=timeout,
        external_traffic_local=etp == "Local" and (has_external or bool(spec.get("externalIPs"))),
        internal_traffic_local=itp == "Local",
        health_check_node_port=r.port(spec.get("healthCheckNodePort"), "spec.healthCheckNodePort", required=False),
    )


def _check_ports(r: _Reader, ports: list[ServicePort]) -> None:
    """What ValidateService requires of the ports as a whole."""
    seen_names: dict[str, int] = {}
    seen_ports: dict[tuple[str, int], int] = {}
    seen_node_ports: dict[tuple[str, int], int] = {}
    for i, p in enumerate(ports):
        if len(ports) > 1 and not p.name:
            raise r.fail(f"spec.ports[{i}].name", "required when a Service has more than one port")
        if p.name in seen_names:
            raise r.fail(f"spec.ports[{i}].name", f"{p.name!r} duplicates spec.ports[{seen_names[p.name]}]")
        seen_names[p.name] = i
        j = seen_ports.setdefault((p.protocol, p.port), i)
        if j != i:
            raise r.fail(f"spec.ports[{i}]", f"{p.protocol} port {p.port} duplicates spec.ports[{j}]")
        if p.node_port:
            j = seen_node_ports.setdefault((p.protocol, p.node_port), i)
            if j != i:
                raise r.fail(
                    f"spec.ports[{i}].nodePort", f"{p.protocol} node port {p.node_port} duplicates spec.ports[{j}]"
                )


def _cluster_ips(r: _Reader, spec: dict) -> tuple[str, ...]:
    ips = r.seq(spec.get("clusterIPs"), "spec.clusterIPs")
    path = "spec.clusterIPs"
    if not ips and spec.get("clusterIP") is not None:
        ips, path = [spec.get("clusterIP")], "spec.clusterIP"
    out = []
    for i, v in enumerate(ips):
        if v in ("None", ""):  # headless
            return ()
        out.append(r.ip(v, f"{path}[{i}]" if path.endswith("IPs") else path))
    if len(out) > 2 or len({ip_family(ip) for ip in out}) != len(out):
        raise r.fail(path, "at most two cluster IPs, one of each family")
    return tuple(out)


def parse_endpoint_slice(obj: dict, where: str) -> EndpointSlice:
    r = _Reader(where)
    namespace, name = _meta(r, obj, namespaced=True)
    r.where = f"{where}: EndpointSlice {namespace}/{name}"
    labels = r.mapping(r.mapping(obj.get("metadata"), "metadata").get("labels"), "metadata.labels")
    label_path = f"metadata.labels[{SERVICE_NAME_LABEL}]"
    if not labels.get(SERVICE_NAME_LABEL):
        raise r.fail(label_path, "missing: the slice names no Service")
    # a label value by the API's rules; one that is no Service name can never match a Service
    service_name = r.name(labels.get(SERVICE_NAME_LABEL), label_path, LABEL_VALUE, 63, "label value")
    address_type = r.string(obj.get("addressType"), "addressType")
    if address_type not in ("IPv4", "IPv6", "FQDN"):
        raise r.fail("addressType", f"must be IPv4, IPv6 or FQDN, got {address_type!r}")
    ports = []
    for i, p in enumerate(r.seq(obj.get("ports"), "ports")):
        path = f"ports[{i}]"
        p = r.mapping(p, path)
        ports.append(
            EndpointPort(
                name=r.label(p.get("name"), f"{path}.name"),
                protocol=r.protocol(p.get("protocol"), f"{path}.protocol"),
                port=r.port(p.get("port"), f"{path}.port"),
            )
        )
    endpoints = []
    for i, e in enumerate(r.seq(obj.get("endpoints"), "endpoints")):
        endpoints.append(_endpoint(r, r.mapping(e, f"endpoints[{i}]"), f"endpoints[{i}]", address_type))
    return EndpointSlice(namespace, name, service_name, address_type, tuple(endpoints), tuple(ports))


def _endpoint(r: _Reader, e: dict, path: str, address_type: str) -> Endpoint:
    addresses = r.seq(e.get("addresses"), f"{path}.addresses")
    if not addresses:
        raise r.fail(f"{path}.addresses", "must hold at least one address")
    if address_type == "FQDN":
        addrs = tuple(r.string(a, f"{path}.addresses[{j}]") for j, a in enumerate(addresses))
    else:
        addrs = tuple(r.ip(a, f"{path}.addresses[{j}]") for j, a in enumerate(addresses))
        want = 4 if address_type == "IPv4" else 6
        for j, a in enumerate(addrs):
            if ip_family(a) != want:
                raise r.fail(f"{path}.addresses[{j}]", f"{a} is not {address_type}")
    cond = r.mapping(e.get("conditions"), f"{path}.conditions")
    # unknown ready and serving both mean true, as kube-proxy reads them (pkg/proxy/
    # endpointslicecache.go): an endpoint {ready: false, terminating: true} with no serving
    # condition is serving and terminating, so it is used when nothing is ready
    ready = r.boolean(cond.get("ready"), f"{path}.conditions.ready", True)
    serving = r.boolean(cond.get("serving"), f"{path}.conditions.serving", True)
    terminating = r.boolean(cond.get("terminating"), f"{path}.conditions.terminating", False)
    hints = r.mapping(e.get("hints"), f"{path}.hints")
    zone_hints = node_hints = None
    if hints.get("forZones") is not None:
        zone_hints = frozenset(
            r.name(
                r.mapping(z, f"{path}.hints.forZones[{k}]").get("name"),
                f"{path}.hints.forZones[{k}].name",
                LABEL_VALUE,
                63,
                "label value",
            )
            for k, z in enumerate(r.seq(hints.get("forZones"), f"{path}.hints.forZones"))
        )
    if hints.get("forNodes") is not None:
        node_hints = frozenset(
            r.name(
                r.mapping(z, f"{path}.hints.forNodes[{k}]").get("name"),
                f"{path}.hints.forNodes[{k}].name",
                DNS1123_SUBDOMAIN,
                253,
                "DNS-1123 subdomain",
            )
            for k, z in enumerate(r.seq(hints.get("forNodes"), f"{path}.hints.forNodes"))
        )
    return Endpoint(
        addresses=addrs,
        ready=ready,
        serving=serving,
        terminating=terminating,
        node_name=r.name(e.get("nodeName"), f"{path}.nodeName", DNS1123_SUBDOMAIN, 253, "DNS-1123 subdomain"),
        zone=r.name(e.get("zone"), f"{path}.zone", LABEL_VALUE, 63, "label value"),
        zone_hints=zone_hints,
        node_hints=node_hints,
    )


def parse_node(obj: dict, where: str) -> Node:
    r = _Reader(where)
    _, name = _meta(r, obj, namespaced=False)
    r.where = f"{where}: Node {name}"
    meta = r.mapping(obj.get("metadata"), "metadata")
    labels = {}
    for k, v in r.mapping(meta.get("labels"), "metadata.labels").items():
        # only the zone label is read; a value the API would refuse is dropped with the object
        labels[str(k)] = r.name(str(v), f"metadata.labels[{k}]", LABEL_VALUE, 63, "label value")
    status = r.mapping(obj.get("status"), "status")
    addrs = []
    for i, a in enumerate(r.seq(status.get("addresses"), "status.addresses")):
        a = r.mapping(a, f"status.addresses[{i}]")
        if a.get("type") in ("InternalIP", "ExternalIP"):
            addrs.append(r.ip(a.get("address"), f"status.addresses[{i}].address"))
    return Node(name=name, labels=labels, addresses=tuple(addrs))


def parse_service_cidr(obj: dict, where: str) -> ServiceCIDR:
    r = _Reader(where)
    _, name = _meta(r, obj, namespaced=False)
    r.where = f"{where}: ServiceCIDR {name}"
    spec = r.mapping(obj.get("spec"), "spec")
    cidrs = tuple(r.cidr(c, f"spec.cidrs[{i}]") for i, c in enumerate(r.seq(spec.get("cidrs"), "spec.cidrs")))
    return ServiceCIDR(name=name, cidrs=cidrs)


PARSERS: dict[tuple[str, str], Callable[[dict, str], KubeObject]] = {
    ("v1", "Service"): parse_service,
    ("discovery.k8s.io/v1", "EndpointSlice"): parse_endpoint_slice,
    ("v1", "Node"): parse_node,
    ("networking.k8s.io/v1", "ServiceCIDR"): parse_service_cidr,
    ("networking.k8s.io/v1beta1", "ServiceCIDR"): parse_service_cidr,
}


@dataclass(frozen=True)
class Loaded:
    """What one file yielded: the usable objects and the errors of the skipped ones."""

    objects: tuple[KubeObject, ...]
    errors: tuple[ObjectError, ...]
    parsed: bool = True  # False: the text as a whole was refused (syntax, size, depth, aliases)


def load_text(text: str, where: str) -> Loaded:
    """Every object in a YAML/JSON text (single objects, Lists, multi-document YAML)."""
    try:
        docs = safeload.load_documents(text, where)
    except safeload.LoadError as e:
        return Loaded((), (ObjectError(where, "", f"unparsable: {e.problem}"),), parsed=False)
    objects: list[KubeObject] = []
    errors: list[ObjectError] = []
    for n, doc in enumerate(docs):
        for item, item_where in _items(doc, f"{where}[{n}]" if len(docs) > 1 else where, errors):
            try:
                obj = _parse_one(item, item_where)
            except ObjectError as e:
                errors.append(e)
                continue
            if obj is not None:
                objects.append(obj)
    return Loaded(tuple(objects), tuple(errors))


def _items(doc, where: str, errors: list[ObjectError]) -> Iterator[tuple[dict, str]]:
    if doc is None:
        return
    if isinstance(doc, list):
        for i, item in enumerate(doc):
            yield from _items(item, f"{where}[{i}]", errors)
        return
    if not isinstance(doc, dict):
        errors.append(ObjectError(where, "", f"not a Kubernetes object: {type(doc).__name__}"))
        return
    kind = doc.get("kind", "")
    if isinstance(kind, str) and kind.endswith("List") and "items" in doc:
        items = doc.get("items") or []
        if not isinstance(items, list):
            errors.append(ObjectError(where, "items", "must be a list"))
            return
        item_kind = kind[: -len("List")]  # typed lists (ServiceList …) may leave kind off their items
        for i, item in enumerate(items):
            if isinstance(item, dict) and item_kind and "kind" not in item:
                item = {"kind": item_kind, "apiVersion": doc.get("apiVersion"), **item}
            yield from _items(item, f"{where}: items[{i}]", errors)
        return
    yield doc, where


def _parse_one(doc: dict, where: str) -> KubeObject | None:
    api_version, kind = doc.get("apiVersion"), doc.get("kind")
    if not isinstance(api_version, str) or not isinstance(kind, str):
        return None  # no kind of ours
    parser = PARSERS.get((api_version, kind))
    if parser is None:
        return None  # other kinds (Pods, Deployments …) may share the directory; not ours
    return parser(doc, where)
