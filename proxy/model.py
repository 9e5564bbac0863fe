"""The one mode-independent model of what a node's proxy must do.

Built from the trackers' state, one ServicePortModel per (Service, port): its addresses, its
policies and the endpoint sets topology.py chose. Every mode's renderer (iptables, nftables,
IPVS) reads this and nothing else; the model is updated incrementally, only for the Services
a drain reports as changed, so a one-Service change costs one Service's work.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from proxy import topology
from proxy.objects import ZONE_LABEL, EndpointSlice, Service, ip_family
from proxy.plan import PortPlan, plan_port
from proxy.trackers import Changes, ServiceKey, Trackers

log = logging.getLogger("podnet.proxy")


@dataclass(frozen=True)
class NodeContext:
    """This node and the proxy's configuration: everything besides Services that rules depend on."""

    name: str
    node_ips: tuple[str, ...] = ()
    cluster_cidrs: tuple[str, ...] = ()
    masquerade_all: bool = False
    nodeport_addresses: tuple[str, ...] = ()  # CIDRs; empty means every local address
    local_addresses: tuple[str, ...] = ()  # this namespace's addresses, for --nodeport-addresses
    localhost_nodeports: bool = True
    zone: str = ""
    service_cidrs: tuple[str, ...] = ()
    family: int = 4

    def nodeport_on_all_addresses(self) -> bool:
        return not self.nodeport_addresses or any(
            ipaddress.ip_network(c).prefixlen == 0 for c in self.nodeport_addresses
        )


class ServicePortName(NamedTuple):
    """(a tuple: a full sync hashes every name several times, and a tuple hashes in C)"""

    namespace: str
    name: str
    port: str
    protocol: str

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name}:{self.port}" if self.port else f"{self.namespace}/{self.name}"

    @property
    def service(self) -> ServiceKey:
        return (self.namespace, self.name)


class EndpointInfo(NamedTuple):
    """One endpoint of one service port (a tuple: there are 100,000 of them in a big cluster,
    and tuples are built and compared in C)."""

    ip: str
    port: int
    address: str  # ip:port, [ip]:port for IPv6
    ready: bool
    serving: bool
    terminating: bool
    is_local: bool
    zone_hints: frozenset[str] | None = None
    node_hints: frozenset[str] | None = None


@dataclass(frozen=True)
class ServicePortModel:
    name: ServicePortName
    cluster_ip: str
    port: int
    protocol: str
    node_port: int = 0
    external_ips: tuple[str, ...] = ()
    load_balancer_ips: tuple[str, ...] = ()
    load_balancer_source_ranges: tuple[str, ...] = ()
    affinity_seconds: int = 0
    external_local: bool = False  # externalTrafficPolicy: Local
    internal_local: bool = False  # internalTrafficPolicy: Local
    health_check_node_port: int = 0
    endpoints: tuple[EndpointInfo, ...] = ()  # all of them, whatever their state
    cluster_endpoints: tuple[EndpointInfo, ...] = ()
    local_endpoints: tuple[EndpointInfo, ...] = ()
    any_usable: bool = False  # usable endpoints exist anywhere in the cluster (else: REJECT)
    all_reachable: tuple[EndpointInfo, ...] = ()  # cluster and local endpoints together
    plan: PortPlan | None = None  # the traffic decisions every mode spells (set by build_service)

    @property
    def externally_reachable(self) -> bool:
        return bool(self.node_port or self.external_ips or self.load_balancer_ips)

    @property
    def uses_cluster_endpoints(self) -> bool:
        return _uses_cluster(self.internal_local, self.external_local, self.externally_reachable)

    @property
    def uses_local_endpoints(self) -> bool:
        return _uses_local(self.internal_local, self.external_local, self.externally_reachable)

    @property
    def local_ready_ips(self) -> frozenset[str]:
        """What a healthCheckNodePort counts: this node's ready endpoints, by IP. Terminating
        ones may still serve (the terminating fallback) but do not count, so a load balancer
        drains a node whose endpoints are all terminating (kube-proxy's
        EndpointsMap.LocalReadyEndpoints, KEP-1669)."""
        return frozenset(e.ip for e in self.endpoints if e.is_local and e.ready)

    @property
    def internal_endpoints(self) -> tuple[EndpointInfo, ...]:
        """Where ClusterIP traffic goes."""
        return self.local_endpoints if self.internal_local else self.cluster_endpoints

    @property
    def external_endpoints(self) -> tuple[EndpointInfo, ...]:
        """Where traffic to NodePorts, externalIPs and load-balancer IPs from outside goes."""
        return self.local_endpoints if self.external_local else self.cluster_endpoints


@dataclass
class ProxyModel:
    node: NodeContext
    ports: dict[ServicePortName, ServicePortModel] = field(default_factory=dict)
    by_service: dict[ServiceKey, tuple[ServicePortName, ...]] = field(default_factory=dict)

    # Services a build drained but did not get to (it was abandoned half-way): the next
    # update rebuilds them, as their changes are no longer in the trackers
    unbuilt: set[ServiceKey] = field(default_factory=set)

    def update(
        self, trackers: Trackers, changes: Changes
    ) -> dict[ServicePortName, tuple[ServicePortModel | None, ServicePortModel | None]]:
        """Rebuild the changed Services; return every service port that was added, removed or
        changed (what a partial sync must rewrite), with its (old, new) models."""
        return self.build(trackers, changes).finish().changed

    def build(self, trackers: Trackers, changes: Changes) -> ModelBuild:
        """The update of the changed Services, made as it is read (ModelBuild.ports)."""
        keys = set(trackers.services.state) | set(self.by_service) if changes.everything else set(changes.services)
        keys |= self.unbuilt
        self.unbuilt = keys
        return ModelBuild(self, trackers, sorted(keys))  # a stable order: renderings are reproducible


@dataclass
class ModelBuild:
    """One update of the model, Service by Service as its reader asks: a full sync renders and
    hands the first service ports to the kernel while the next are still being built. Until
    it has been read to the end, the model holds the Services built so far (and the
    previous state of the others)."""

    model: ProxyModel
    trackers: Trackers
    keys: list[ServiceKey]
    # every service port added, removed or changed so far: (old, new)
    changed: dict[ServicePortName, tuple[ServicePortModel | None, ServicePortModel | None]] = field(
        default_factory=dict
    )

    def ports(self) -> Iterator[ServicePortModel]:
        """Every service port of the updated model: first those of the Services not rebuilt,
        then each rebuilt Service's as it is built (the order the model's ports then have).
        Read once."""
        model = self.model
        rebuilt = set(self.keys)
        for key, names in list(model.by_service.items()):
            if key not in rebuilt:
                yield from (model.ports[n] for n in names)
        yield from self._rebuilt()

    def finish(self) -> ModelBuild:
        """Build it all now (nobody reads the ports as they come); a one-Service change costs
        one Service's work."""
        for _ in self._rebuilt():
            pass
        return self

    def _rebuilt(self) -> Iterator[ServicePortModel]:
        model, changed, unbuilt = self.model, self.changed, self.model.unbuilt
        states, slices_of = self.trackers.services.state, self.trackers.slices_of
        for key in self.keys:
            old = {n: model.ports.pop(n) for n in model.by_service.pop(key, ())}
            svc = states.get(key)
            new = build_service(svc, slices_of(key), model.node) if svc is not None else {}
            model.ports.update(new)
            if new:
                model.by_service[key] = tuple(sorted(new))
            unbuilt.discard(key)
            if not old:  # a new Service (every one, in the first sync)
                changed.update({n: (None, p) for n, p in new.items()})
            else:
                for n in old.keys() | new.keys():
                    if old.get(n) != new.get(n):
                        changed[n] = (old.get(n), new.get(n))
            yield from new.values()


def build_service(
    svc: Service, slices: list[EndpointSlice], node: NodeContext
) -> dict[ServicePortName, ServicePortModel]:
    """The service ports of one Service for this node's family, with their endpoint sets."""
    if not svc.proxied:
        return {}
    cluster_ip = next((ip for ip in svc.cluster_ips if ip_family(ip) == node.family), None)
    if cluster_ip is None:
        return {}
    same_family = lambda ips: tuple(ip for ip in ips if ip_family(ip) == node.family)  # noqa: E731
    external_ips = same_family(svc.external_ips)
    lb_ips = same_family(svc.load_balancer_ips)
    ranges = tuple(c for c in svc.load_balancer_source_ranges if ipaddress.ip_network(c).version == node.family)
    out: dict[ServicePortName, ServicePortModel] = {}
    for sp in svc.ports:
        name = ServicePortName(svc.namespace, svc.name, sp.name, sp.protocol)
        endpoints = _endpoints_for(sp.name, sp.protocol, slices, node)
        reachable = bool(sp.node_port or external_ips or lb_ips)
        ext_local, int_local = svc.external_traffic_local, svc.internal_traffic_local
        sets = topology.categorize(
            endpoints,
            uses_cluster=_uses_cluster(int_local, ext_local, reachable),
            uses_local=_uses_local(int_local, ext_local, reachable),
            node_name=node.name,
            zone=node.zone,
        )
        fields: dict[str, Any] = dict(
            name=name,
            cluster_ip=cluster_ip,
            port=sp.port,
            protocol=sp.protocol,
            node_port=sp.node_port,
            external_ips=external_ips,
            load_balancer_ips=lb_ips,
            load_balancer_source_ranges=ranges,
            affinity_seconds=svc.session_affinity_seconds,
            external_local=ext_local,
            internal_local=int_local,
            health_check_node_port=svc.health_check_node_port if ext_local else 0,
            endpoints=endpoints,
            cluster_endpoints=sets.cluster,
            local_endpoints=sets.local,
            any_usable=sets.any_usable,
            all_reachable=tuple(dict.fromkeys(sets.cluster + sets.local)),
        )
        # planned from the unplanned model, which then gets its plan before anyone sees it
        # (cheaper than building it twice or dataclasses.replace, once per service port)
        p = out[name] = ServicePortModel(**fields)
        object.__setattr__(p, "plan", plan_port(p, node))
    return out


def _uses_cluster(internal_local: bool, external_local: bool, externally_reachable: bool) -> bool:
    return not internal_local or (externally_reachable and not external_local)


def _uses_local(internal_local: bool, external_local: bool, externally_reachable: bool) -> bool:
    return internal_local or (externally_reachable and external_local)


def _endpoints_for(
    port_name: str, protocol: str, slices: list[EndpointSlice], node: NodeContext
) -> tuple[EndpointInfo, ...]:
    """Endpoints whose slice port has the Service port's name (and protocol), de-duplicated by
    address, as kube-proxy matches them."""
    want = "IPv4" if node.family == 4 else "IPv6"
    v4 = node.family == 4  # a slice's addresses are of its address type
    me = node.name
    found: dict[str, EndpointInfo] = {}
    for s in slices:
        if s.address_type != want:
            continue
        for p in s.ports:
            if p.name != port_name or p.protocol != protocol:
                continue
            port = p.port
            for e in s.endpoints:
                ip = e.addresses[0]  # kube-proxy uses the first address only
                address = f"{ip}:{port}" if v4 else f"[{ip}]:{port}"
                if address not in found:
                    is_local = bool(me) and e.node_name == me
                    info = (ip, port, address, e.ready, e.serving, e.terminating, is_local, e.zone_hints, e.node_hints)
                    # tuple.__new__ in C: the NamedTuple's own __new__ is a Python function
                    found[address] = tuple.__new__(EndpointInfo, info)
    return tuple(map(found.__getitem__, sorted(found)))


def node_context_with(node: NodeContext, trackers: Trackers) -> NodeContext:
    """The context refreshed from the Node and ServiceCIDR objects (zone label, service ranges)."""
    obj = trackers.node()
    zone = obj.labels.get(ZONE_LABEL, "") if obj is not None else ""
    # configured ranges (--service-cidr) and the ServiceCIDR objects' together
    cidrs = tuple(sorted({c for sc in trackers.cidrs.state.values() for c in sc.cidrs} | set(node.service_cidrs)))
    return NodeContext(**{**node.__dict__, "zone": zone, "service_cidrs": cidrs})
