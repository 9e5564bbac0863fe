"""Trackers, the model and topology: which Services changed, which endpoints are used."""

from __future__ import annotations

from proxy.model import NodeContext, ProxyModel, node_context_with
from proxy.objects import Endpoint, EndpointPort, EndpointSlice, Node, Service, ServicePort
from proxy.trackers import ChangeTracker, Trackers

NODE = NodeContext(name="n1")


def svc(name="web", **kw) -> Service:
    ports = kw.pop("ports", (ServicePort("http", "TCP", 80),))
    return Service("default", name, cluster_ips=("10.96.0.1",), ports=ports, **kw)


def eps(name="web", *endpoints: Endpoint, port_name="http") -> EndpointSlice:
    return EndpointSlice("default", f"{name}-1", name, "IPv4", endpoints, (EndpointPort(port_name, "TCP", 8080),))


def ep(ip, node="n2", **kw) -> Endpoint:
    return Endpoint(addresses=(ip,), node_name=node, **kw)


def feed(t: Trackers, *objects) -> None:
    for o in objects:
        t.update(o.key, type(o), o)


def test_tracker_forgets_changes_that_return_to_the_start():
    t: ChangeTracker[str, int] = ChangeTracker()
    t.update("a", 1)
    assert t.drain() == {"a": (None, 1)}
    t.update("a", 2)
    t.update("a", 1)
    assert not t.pending() and t.drain() == {}
    t.update("a", None)
    assert t.drain() == {"a": (1, None)} and t.state == {}


def test_model_updates_only_changed_services():
    t = Trackers("n1")
    feed(t, svc("a"), svc("b"), eps("a", ep("10.0.0.1")), eps("b", ep("10.0.0.2")))
    m = ProxyModel(NODE)
    assert {str(n) for n in m.update(t, t.drain())} == {"default/a:http", "default/b:http"}
    feed(t, eps("b", ep("10.0.0.3")))
    changed = m.update(t, t.drain())
    assert {str(n) for n in changed} == {"default/b:http"}
    old, new = next(iter(changed.values()))
    assert [e.ip for e in old.cluster_endpoints] == ["10.0.0.2"] and [e.ip for e in new.cluster_endpoints] == [
        "10.0.0.3"
    ]
    t.update(("default", "b"), Service, None)
    assert list(m.update(t, t.drain()).values())[0][1] is None
    assert {str(n) for n in m.ports} == {"default/a:http"}


def test_endpoint_ports_match_by_name():
    t = Trackers("n1")
    feed(t, svc(), eps("web", ep("10.0.0.1"), port_name="other"))
    m = ProxyModel(NODE)
    m.update(t, t.drain())
    (p,) = m.ports.values()
    assert p.endpoints == () and not p.any_usable


def test_ready_then_serving_terminating_fallback_cluster_and_local_separately():
    t = Trackers("n1")
    endpoints = (
        ep("10.0.0.1", node="n1", ready=False, serving=True, terminating=True),
        ep("10.0.0.2", node="n2", ready=True),
    )
    feed(t, svc(internal_traffic_local=False, external_traffic_local=True, type="NodePort",
                ports=(ServicePort("http", "TCP", 80, 30080),)), eps("web", *endpoints))  # fmt: skip
    m = ProxyModel(NODE)
    m.update(t, t.drain())
    (p,) = m.ports.values()
    assert [e.ip for e in p.cluster_endpoints] == ["10.0.0.2"]  # a ready one exists cluster-wide
    assert [e.ip for e in p.local_endpoints] == ["10.0.0.1"]  # none ready here: the terminating one


def test_every_endpoint_terminating_falls_back_for_cluster_and_local_alike():
    """kube-proxy's CategorizeEndpoints: with nothing ready anywhere, the serving and
    terminating endpoints are used (cluster-wide for policy Cluster, this node's for Local),
    and the Service counts as having endpoints (no REJECT)."""
    t = Trackers("n1")
    endpoints = (
        ep("10.0.0.1", node="n1", ready=False, serving=True, terminating=True),
        ep("10.0.0.2", node="n2", ready=False, serving=True, terminating=True),
        ep("10.0.0.3", node="n1", ready=False, serving=False, terminating=True),  # draining, not serving
        ep("10.0.0.4", node="n1", ready=False, serving=True, terminating=False),  # serving, not terminating
    )
    feed(t, svc(external_traffic_local=True, type="NodePort", ports=(ServicePort("http", "TCP", 80, 30080),),
                health_check_node_port=32000), eps("web", *endpoints))  # fmt: skip
    m = ProxyModel(NODE)
    m.update(t, t.drain())
    (p,) = m.ports.values()
    assert [e.ip for e in p.cluster_endpoints] == ["10.0.0.1", "10.0.0.2"]
    assert [e.ip for e in p.local_endpoints] == ["10.0.0.1"]
    assert p.any_usable and p.plan is not None
    assert not p.plan.internal_verdict and not p.plan.external_verdict
    # ... but a healthCheckNodePort counts ready endpoints only, so the load balancer drains this node
    assert p.local_ready_ips == frozenset()


def test_topology_hints():
    t = Trackers("n1")
    z = lambda *zs: frozenset(zs)  # noqa: E731
    feed(t, svc(), eps("web", ep("10.0.0.1", zone_hints=z("a")), ep("10.0.0.2", zone_hints=z("b"))))
    t.update("n1", Node, Node("n1", labels={"topology.kubernetes.io/zone": "a"}))
    m = ProxyModel(NODE)
    changes = t.drain()
    m.node = node_context_with(NODE, t)
    m.update(t, changes)
    (p,) = m.ports.values()
    assert [e.ip for e in p.cluster_endpoints] == ["10.0.0.1"]
    # a zone no endpoint is hinted for: hints are ignored
    t.update("n1", Node, Node("n1", labels={"topology.kubernetes.io/zone": "c"}))
    changes = t.drain()
    assert changes.everything
    m.node = node_context_with(NODE, t)
    m.update(t, changes)
    (p,) = m.ports.values()
    assert len(p.cluster_endpoints) == 2
