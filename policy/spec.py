"""NetworkPolicy objects (networking.k8s.io/v1) parsed into frozen values, validated as the API
server validates them: a bad field is refused with its path (`spec.ingress[0].from[0]: must
specify a peer`), an unknown one too (kubectl's strict field validation). Defaults are filled in
here, once, as the API server fills them: policyTypes from the rules, protocol TCP."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from typing import Any

from policy.selectors import OPERATORS, Expression, LabelSelector

PROTOCOLS = ("TCP", "UDP", "SCTP")
INGRESS, EGRESS = "Ingress", "Egress"

_DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_LABEL_NAME = re.compile(r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]")
_LABEL_VALUE = re.compile(r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?")
_PORT_NAME = re.compile(r"[a-z0-9]([a-z0-9-]*[a-z0-9])?")


class PolicyError(ValueError):
    """A field the API server would refuse; the message starts with its path."""


@dataclass(frozen=True)
class IPBlock:
    cidr: str
    excepts: tuple[str, ...] = ()


@dataclass(frozen=True)
class Peer:
    """One `from`/`to` entry: pods (podSelector, namespaceSelector, both = AND) or an ipBlock."""

    pod_selector: LabelSelector | None = None
    namespace_selector: LabelSelector | None = None
    ip_block: IPBlock | None = None


@dataclass(frozen=True)
class PolicyPort:
    protocol: str = "TCP"
    port: int | str | None = None  # None: every port of the protocol; str: a named port
    end_port: int | None = None


@dataclass(frozen=True)
class PolicyRule:
    peers: tuple[Peer, ...] = ()  # empty: every peer
    ports: tuple[PolicyPort, ...] = ()  # empty: every port and protocol


@dataclass(frozen=True)
class NetworkPolicy:
    namespace: str
    name: str
    pod_selector: LabelSelector
    policy_types: tuple[str, ...]
    ingress: tuple[PolicyRule, ...] = ()
    egress: tuple[PolicyRule, ...] = ()

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"

    @property
    def isolates_ingress(self) -> bool:
        return INGRESS in self.policy_types

    @property
    def isolates_egress(self) -> bool:
        return EGRESS in self.policy_types


def _fail(where: str, msg: str) -> PolicyError:
    return PolicyError(f"{where}: {msg}")


def _map(value: Any, where: str, allowed: set[str]) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise _fail(where, f"expected an object, got {type(value).__name__}")
    for key in value:
        if key not in allowed:
            raise _fail(f"{where}.{key}" if where else str(key), "unknown field")
    return value


def _list(value: Any, where: str) -> list:
    if value is None:
        return []
    if not isinstance(value, list):
        raise _fail(where, f"expected a list, got {type(value).__name__}")
    return value


def _label_key(key: Any, where: str) -> str:
    if not isinstance(key, str):
        raise _fail(where, f"Invalid value: {key!r}: a label key is a string")
    prefix, _, name = key.rpartition("/")
    if (prefix and (len(prefix) > 253 or not _DNS_SUBDOMAIN.fullmatch(prefix))) or (
        len(name) > 63 or not _LABEL_NAME.fullmatch(name)
    ):
        raise _fail(where, f"Invalid value: {key!r}: not a valid label key")
    return key


def _label_value(value: Any, where: str) -> str:
    if not isinstance(value, str) or len(value) > 63 or not _LABEL_VALUE.fullmatch(value):
        raise _fail(where, f"Invalid value: {value!r}: not a valid label value")
    return value


def parse_selector(data: Any, where: str) -> LabelSelector:
    data = _map(data, where, {"matchLabels", "matchExpressions"})
    labels = _map(data.get("matchLabels"), f"{where}.matchLabels", set(data.get("matchLabels") or {}))
    match = tuple(
        sorted(
            (_label_key(k, f"{where}.matchLabels"), _label_value(v, f"{where}.matchLabels.{k}"))
            for k, v in labels.items()
        )
    )
    exprs = []
    for i, e in enumerate(_list(data.get("matchExpressions"), f"{where}.matchExpressions")):
        ew = f"{where}.matchExpressions[{i}]"
        e = _map(e, ew, {"key", "operator", "values"})
        key = _label_key(e.get("key"), f"{ew}.key")
        op = e.get("operator")
        if op not in OPERATORS:
            raise _fail(f"{ew}.operator", f"Unsupported value: {op!r}: supported values: {', '.join(OPERATORS)}")
        values = _list(e.get("values"), f"{ew}.values")
        if op in ("In", "NotIn") and not values:
            raise _fail(f"{ew}.values", "Required value: must be specified when `operator` is 'In' or 'NotIn'")
        if op in ("Exists", "DoesNotExist") and values:
            raise _fail(f"{ew}.values", "Forbidden: may not be specified when `operator` is 'Exists' or 'DoesNotExist'")
        vals = tuple(_label_value(v, f"{ew}.values[{j}]") for j, v in enumerate(values))
        exprs.append(Expression(key, op, vals))
    return LabelSelector(match, tuple(exprs))


def _network(text: Any, where: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    try:
        return ipaddress.ip_network(str(text), strict=True) if isinstance(text, str) else _bad_cidr(text, where)
    except ValueError:
        return _bad_cidr(text, where)


def _bad_cidr(text: Any, where: str) -> Any:
    raise _fail(where, f"Invalid value: {text!r}: must be a valid CIDR (e.g. 10.0.0.0/16), host bits zero")


def parse_ip_block(data: Any, where: str) -> IPBlock:
    data = _map(data, where, {"cidr", "except"})
    if "cidr" not in data:
        raise _fail(f"{where}.cidr", "Required value")
    cidr = _network(data["cidr"], f"{where}.cidr")
    excepts = []
    for i, e in enumerate(_list(data.get("except"), f"{where}.except")):
        net = _network(e, f"{where}.except[{i}]")
        if net.version != cidr.version or not net.subnet_of(cidr) or net == cidr:  # type: ignore[arg-type]
            raise _fail(f"{where}.except[{i}]", f"Invalid value: {e!r}: must be a strict subset of `cidr`")
        excepts.append(str(net))
    return IPBlock(str(cidr), tuple(excepts))


def parse_peer(data: Any, where: str) -> Peer:
    data = _map(data, where, {"podSelector", "namespaceSelector", "ipBlock"})
    if not any(data.get(k) is not None for k in ("podSelector", "namespaceSelector", "ipBlock")):
        raise _fail(where, "Required value: must specify a peer")
    if data.get("ipBlock") is not None:
        if data.get("podSelector") is not None or data.get("namespaceSelector") is not None:
            raise _fail(where, "Forbidden: may not specify both ipBlock and another peer")
        return Peer(ip_block=parse_ip_block(data["ipBlock"], f"{where}.ipBlock"))
    pods = data.get("podSelector")
    nss = data.get("namespaceSelector")
    return Peer(
        pod_selector=parse_selector(pods, f"{where}.podSelector") if pods is not None else None,
        namespace_selector=parse_selector(nss, f"{where}.namespaceSelector") if nss is not None else None,
    )


def _port_number(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 65535:
        raise _fail(where, f"Invalid value: {value!r}: must be between 1 and 65535, inclusive")
    return value


def parse_port(data: Any, where: str) -> PolicyPort:
    data = _map(data, where, {"protocol", "port", "endPort"})
    protocol = data.get("protocol", "TCP")
    if protocol not in PROTOCOLS:
        raise _fail(f"{where}.protocol", f"Unsupported value: {protocol!r}: supported values: {', '.join(PROTOCOLS)}")
    port = data.get("port")
    if isinstance(port, str) and not port.isdigit():
        if len(port) > 15 or not _PORT_NAME.fullmatch(port) or "--" in port or not re.search("[a-z]", port):
            raise _fail(f"{where}.port", f"Invalid value: {port!r}: must be a valid port name (IANA_SVC_NAME)")
    elif port is not None:
        port = _port_number(int(port) if isinstance(port, str) else port, f"{where}.port")
    end = data.get("endPort")
    if end is not None:
        end = _port_number(end, f"{where}.endPort")
        if port is None:
            raise _fail(f"{where}.endPort", "Required value: may not be specified when `port` is not specified")
        if isinstance(port, str):
            raise _fail(f"{where}.endPort", "Invalid value: may not be specified when `port` is non-numeric")
        if end < port:
            raise _fail(f"{where}.endPort", f"Invalid value: {end}: must be greater than or equal to `port`")
    return PolicyPort(protocol, port, end)


def parse_rule(data: Any, where: str, peers_key: str) -> PolicyRule:
    data = _map(data, where, {peers_key, "ports"})
    peers = tuple(
        parse_peer(p, f"{where}.{peers_key}[{i}]")
        for i, p in enumerate(_list(data.get(peers_key), f"{where}.{peers_key}"))
    )
    ports = tuple(
        parse_port(p, f"{where}.ports[{i}]") for i, p in enumerate(_list(data.get("ports"), f"{where}.ports"))
    )
    return PolicyRule(peers, ports)


def parse(obj: Any, where: str = "") -> NetworkPolicy:
    """A NetworkPolicy object (namespace "default" when it names none) -> its value."""
    at = f"{where}: " if where else ""
    try:
        return _parse(obj)
    except PolicyError as e:
        raise PolicyError(f"{at}{e}") from None


def _parse(obj: Any) -> NetworkPolicy:
    obj = _map(obj, "", {"apiVersion", "kind", "metadata", "spec", "status"})
    if obj.get("apiVersion") != "networking.k8s.io/v1" or obj.get("kind") != "NetworkPolicy":
        raise _fail("kind", "not a networking.k8s.io/v1 NetworkPolicy")
    meta = obj.get("metadata")
    if not isinstance(meta, dict):
        raise _fail("metadata", "Required value")
    name = meta.get("name")
    if not isinstance(name, str) or len(name) > 253 or not _DNS_SUBDOMAIN.fullmatch(name):
        raise _fail("metadata.name", f"Invalid value: {name!r}: a lowercase RFC 1123 subdomain")
    namespace = meta.get("namespace") or "default"
    if not isinstance(namespace, str) or len(namespace) > 63 or not _DNS_LABEL.fullmatch(namespace):
        raise _fail("metadata.namespace", f"Invalid value: {namespace!r}: a lowercase RFC 1123 label")
    spec = _map(obj.get("spec"), "spec", {"podSelector", "policyTypes", "ingress", "egress"})
    selector = parse_selector(spec.get("podSelector"), "spec.podSelector")
    ingress = tuple(
        parse_rule(r, f"spec.ingress[{i}]", "from") for i, r in enumerate(_list(spec.get("ingress"), "spec.ingress"))
    )
    egress = tuple(
        parse_rule(r, f"spec.egress[{i}]", "to") for i, r in enumerate(_list(spec.get("egress"), "spec.egress"))
    )
    types = _list(spec.get("policyTypes"), "spec.policyTypes")
    if len(types) > 2:
        raise _fail("spec.policyTypes", "Invalid value: may not have more than 2 values")
    for i, t in enumerate(types):
        if t not in (INGRESS, EGRESS):
            raise _fail(f"spec.policyTypes[{i}]", f"Unsupported value: {t!r}: supported values: Ingress, Egress")
    if not types:  # the API server's default: Ingress always, Egress when egress rules are given
        types = [INGRESS, *([EGRESS] if egress else [])]
    return NetworkPolicy(namespace, name, selector, tuple(dict.fromkeys(types)), ingress, egress)


def validate(obj: dict, where: str) -> None:
    """cluster.registry's validator: `podnet cluster apply` refuses what the API server would."""
    if obj.get("kind") == "NetworkPolicy":
        parse(obj, where)
