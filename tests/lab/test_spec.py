"""The lab spec is pure: it parses, checks and serialises without touching the kernel."""

from __future__ import annotations

import os

import pytest
import yaml

from podnet.lab import objects, selectors, spec

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_default_is_the_tutorial_file_and_round_trips():
    with open(os.path.join(ROOT, "netns-labs", "tutorial.yaml")) as f:
        from_file = spec.parse(yaml.safe_load(f))
    assert from_file == spec.default()
    assert spec.parse(spec.to_dict(from_file)) == from_file
    assert [d.replicas for d in from_file.deployments] == [3, 1]
    assert from_file.service("frontend").ports[0].node_port == 30080


@pytest.mark.parametrize(
    "change, field",
    [
        ({"nodes": []}, "nodes"),
        ({"nodes": ["a", "a"]}, "nodes"),
        ({"nodes": ["Bad_Name"]}, "nodes[0]"),
        ({"network": {"clusterCIDR": "10.244.0.1/16"}}, "network.clusterCIDR"),
        ({"network": {"serviceCIDR": "10.244.0.0/24"}}, "network.serviceCIDR"),
        ({"network": {"proxyMode": "userspace"}}, "network.proxyMode"),
        ({"network": {"nodeSubnetSize": 40}}, "network.nodeSubnetSize"),
        ({"deployments": [{"name": "x", "replicas": -1}]}, "deployments[0].replicas"),
        ({"deployments": [{"name": "x", "workload": {"kind": "java"}}]}, "deployments[0].workload.kind"),
        ({"deployments": [{"name": "x", "workload": {"backend": "nope"}}]}, "deployments[0].workload.backend"),
        ({"services": [{"name": "s", "selector": {"a": "b"}, "ports": [{"port": 80, "nodePort": 30001}]}]}, "nodePort"),
        ({"services": [{"name": "s", "selector": {}, "ports": [{"port": 80}]}]}, "services[0].selector"),
        (
            {"services": [{"name": "s", "selector": {"a": "b"}, "ports": [{"port": 99999}]}]},
            "services[0].ports[0].port",
        ),
        ({"colour": "blue"}, "colour"),
    ],
)
def test_bad_input_names_the_field(change, field):
    data = {**spec.tutorial_data(), **change}
    if "network" in change:
        data["network"] = {**spec.tutorial_data()["network"], **change["network"]}
    if "deployments" in change or "services" in change:
        data.setdefault("services", [])
    with pytest.raises(spec.SpecError) as e:
        spec.parse(data)
    assert field in str(e.value)


def test_template_hash_follows_the_version():
    d = spec.default().deployment("frontend")
    import dataclasses

    assert d.template_hash() != dataclasses.replace(d, version="v2").template_hash()
    assert d.template_hash() == dataclasses.replace(d, replicas=9).template_hash()


def test_apply_file_parses_the_canary():
    (canary,) = spec.load_objects(os.path.join(ROOT, "netns-labs", "canary.yaml"))
    assert canary.labels["app"] == "frontend" and canary.version == "v2" and canary.replicas == 1


def test_selectors():
    reqs = selectors.parse("app=frontend,track!=canary,version")
    assert selectors.matches(reqs, {"app": "frontend", "version": "v1"})
    assert not selectors.matches(reqs, {"app": "frontend", "version": "v1", "track": "canary"})
    assert not selectors.matches(reqs, {"app": "frontend"})
    with pytest.raises(selectors.SelectorError, match="-l"):
        selectors.parse("app=frontend,=x")


def test_objects_follow_kubernetes_shapes():
    lab = spec.default()
    svc = lab.service("frontend")
    obj = objects.service_object(svc, lab, "10.96.0.10", {80: 30080}, None)
    assert obj["spec"]["ports"] == [{"protocol": "TCP", "port": 80, "targetPort": 8080, "nodePort": 30080}]
    eps = [
        objects.Endpoint("a", "10.244.1.2", "node1", True, True, False),
        objects.Endpoint("b", "10.244.2.2", "node2", False, True, True),
    ]
    sl = objects.endpoint_slice(svc, lab, eps)
    assert sl["metadata"]["labels"]["kubernetes.io/service-name"] == "frontend"
    assert sl["endpoints"][1]["conditions"] == {"ready": False, "serving": True, "terminating": True}
    assert sl["endpoints"][0]["nodeName"] == "node1"
    assert sl["ports"] == [{"name": "", "protocol": "TCP", "port": 8080}]
