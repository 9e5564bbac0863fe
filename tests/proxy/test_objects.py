"""Loading Kubernetes objects: defaults, leniency, and errors that name file, object and field."""

from __future__ import annotations

import json

from proxy.objects import EndpointSlice, Node, Service, ServiceCIDR, load_text, parse_ip

SVC = """
apiVersion: v1
kind: Service
metadata: {name: web, namespace: shop}
spec:
  type: NodePort
  clusterIP: 172.30.0.041
  ports: [{name: http, port: 80, nodePort: 30080}, {name: dns, port: 53, protocol: UDP}]
  sessionAffinity: ClientIP
  externalTrafficPolicy: Local
"""


def test_service_defaults_and_leading_zero_ip():
    loaded = load_text(SVC, "svc.yaml")
    assert loaded.errors == ()
    (svc,) = loaded.objects
    assert isinstance(svc, Service)
    assert svc.cluster_ips == ("172.30.0.41",)
    assert [(p.name, p.protocol, p.port, p.node_port) for p in svc.ports] == [
        ("http", "TCP", 80, 30080),
        ("dns", "UDP", 53, 0),
    ]
    assert svc.session_affinity_seconds == 10800  # the API default
    assert svc.external_traffic_local and not svc.internal_traffic_local


def test_parse_ip_reads_leading_zeros_as_decimal():
    assert parse_ip("010.001.000.009") == "10.1.0.9"
    assert parse_ip("fd00::1") == "fd00::1"


def test_lists_multi_documents_and_json():
    slices = {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSliceList",
        "items": [
            {
                "metadata": {"name": "web-1", "namespace": "shop", "labels": {"kubernetes.io/service-name": "web"}},
                "addressType": "IPv4",
                "endpoints": [{"addresses": ["10.0.0.1"], "conditions": {"ready": False, "terminating": True}}],
                "ports": [{"name": "http", "port": 8080}],
            }
        ],
    }
    loaded = load_text(json.dumps(slices), "s.json")
    (sl,) = loaded.objects
    assert isinstance(sl, EndpointSlice) and sl.service_key == ("shop", "web")
    ep = sl.endpoints[0]
    # an unknown serving condition is true, as kube-proxy reads it (not "defer to ready")
    assert (ep.ready, ep.serving, ep.terminating) == (False, True, True)
    multi = SVC + "\n---\n" + "apiVersion: v1\nkind: Node\nmetadata: {name: n1, labels: {a: b}}\n"
    multi += (
        "---\napiVersion: networking.k8s.io/v1\nkind: ServiceCIDR\nmetadata: {name: k}\nspec: {cidrs: [10.96.0.0/12]}\n"
    )
    kinds = [type(o) for o in load_text(multi, "m.yaml").objects]
    assert kinds == [Service, Node, ServiceCIDR]


def test_invalid_objects_name_file_object_and_field_and_others_survive():
    text = (
        SVC
        + """
---
apiVersion: v1
kind: Service
metadata: {name: bad}
spec: {clusterIP: 10.0.0.1, ports: [{name: a, port: 70000}]}
---
apiVersion: v1
kind: Service
metadata: {name: proto}
spec: {clusterIP: 10.0.0.2, ports: [{name: a, port: 80, protocol: ICMP}]}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: s, labels: {kubernetes.io/service-name: web}}
addressType: IPv4
endpoints: [{addresses: [10.0.0.300]}]
"""
    )
    loaded = load_text(text, "f.yaml")
    assert [o.name for o in loaded.objects] == ["web"]
    messages = [str(e) for e in loaded.errors]
    assert "Service default/bad: spec.ports[0].port: port 70000 out of range" in messages[0]
    assert messages[0].startswith("f.yaml[1]")
    assert "spec.ports[0].protocol: unknown protocol 'ICMP'" in messages[1]
    assert "EndpointSlice default/s: endpoints[0].addresses[0]: invalid IP address '10.0.0.300'" in messages[2]


def test_unparsable_file_is_one_error():
    loaded = load_text("kind: Service\n  metadata: [\n", "broken.yaml")
    assert loaded.objects == () and "broken.yaml: unparsable" in str(loaded.errors[0])


def test_headless_and_external_name_are_not_proxied():
    headless = load_text("apiVersion: v1\nkind: Service\nmetadata: {name: h}\nspec: {clusterIP: None}\n", "h").objects
    ext = load_text("apiVersion: v1\nkind: Service\nmetadata: {name: e}\nspec: {type: ExternalName}\n", "e").objects
    assert not headless[0].proxied and not ext[0].proxied
