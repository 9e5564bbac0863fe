"""The proxier's running tallies (no-local-endpoint counts, healthCheckNodePorts) always equal
a recount over the whole model, while a sync only touches the service ports it changed."""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from proxy.model import NodeContext, ServicePortModel
from proxy.objects import ServicePort
from proxy.proxier import Proxier
from proxy.trackers import Trackers
from tests.support import synthetic as S


@dataclass
class _Tx:
    full: bool

    def text(self) -> str:
        return ""

    def rule_counts(self) -> dict[str, int]:
        return {}


@dataclass
class _Backend:
    mode: str = "fake"
    changed: list[int] = field(default_factory=list)

    def render(self, model, changed, full):
        self.changed.append(len(changed))
        return _Tx(full)

    def apply(self, tx) -> None:
        pass

    def cleanup(self) -> list[str]:
        return []

    def show(self) -> str:
        return ""


def _recount(proxier: Proxier) -> tuple[dict[str, int], dict[int, tuple[str, int]]]:
    no_local = {"internal": 0, "external": 0}
    ips: dict[int, tuple[str, frozenset[str]]] = {}
    for p in proxier.model.ports.values():
        if p.internal_local and p.endpoints and not p.local_endpoints:
            no_local["internal"] += 1
        if p.external_local and p.externally_reachable and p.endpoints and not p.local_endpoints:
            no_local["external"] += 1
        if p.health_check_node_port:  # ready local endpoints, once per IP across the ports
            ready = frozenset(e.ip for e in p.endpoints if e.is_local and e.ready)
            _, seen = ips.get(p.health_check_node_port, ("", frozenset()))
            ips[p.health_check_node_port] = (p.name.name, seen | ready)
    return no_local, {hc: (name, len(seen)) for hc, (name, seen) in ips.items()}


def _seen(ports: dict[int, tuple[ServicePortModel, int]]) -> dict[int, tuple[str, int]]:
    return {hc: (p.name.name, n) for hc, (p, n) in ports.items()}


def _random_service(rng: random.Random, i: int):
    local = rng.random() < 0.6
    two_ports = rng.random() < 0.3
    ports = (ServicePort("http", "TCP", 80, 30000 + i),)
    if two_ports:
        ports += (ServicePort("alt", "TCP", 81, 31000 + i),)
    return S.service(
        i,
        type="LoadBalancer" if local else "ClusterIP",
        ports=ports,
        external_traffic_local=local,
        internal_traffic_local=rng.random() < 0.3,
        health_check_node_port=32000 + i if local else 0,
    )


def test_tallies_match_a_recount_through_random_changes():
    rng = random.Random(12)
    node = NodeContext(name=S.NODE, node_ips=("10.250.1.1",), cluster_cidrs=("10.128.0.0/9",))
    trackers = Trackers(S.NODE)
    backend = _Backend()
    proxier = Proxier(node, backend, trackers, clean_conntrack=False)
    services = {i: _random_service(rng, i) for i in range(40)}
    slices = {i: S.endpoint_slice(i, rng.randrange(0, 4), local={0} if rng.random() < 0.5 else set()) for i in services}
    S.feed(trackers, *services.values(), *slices.values())
    proxier.sync()
    for _ in range(60):
        i = rng.randrange(50)
        what = rng.random()
        if what < 0.2 and i in services:
            S.remove(trackers, services.pop(i))
        elif what < 0.4:
            services[i] = _random_service(rng, i)
            S.feed(trackers, services[i])
        else:
            slices[i] = S.endpoint_slice(
                i, rng.randrange(0, 4), local={rng.randrange(4)} if rng.random() < 0.5 else set()
            )
            S.feed(trackers, slices[i])
        result = proxier.sync()
        no_local, health = _recount(proxier)
        assert proxier.tally.no_local == no_local
        assert _seen(proxier.health_check_ports()) == health
        for policy, count in no_local.items():
            got = proxier.metrics.get(
                "kubeproxy_sync_proxy_rules_no_local_endpoints_total", traffic_policy=policy, ip_family="IPv4"
            )
            assert got == count
        assert not result.applied or backend.changed[-1] <= 2  # one Service's ports, never the model
