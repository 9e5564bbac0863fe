"""`podnet lab apply -f` with NetworkPolicy manifests (no lab needed): validated as the API
server validates them, stored in desired.json as the objects the agents read."""

from __future__ import annotations

import pytest
import yaml

from podnet.lab import manifests, netpols
from podnet.lab.spec import SpecError

DENY = """
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: web-deny-all}
spec: {podSelector: {matchLabels: {app: web}}, ingress: []}
"""


def parse(text: str, namespace: str | None = None):
    return manifests.parse_objects(list(yaml.safe_load_all(text)), "f.yaml", namespace)


def test_a_policy_is_taken_with_its_namespace_filled_in():
    [(kind, obj)] = parse(DENY)
    assert kind == "NetworkPolicy"
    assert obj["metadata"] == {"name": "web-deny-all", "namespace": "default"}
    [(_, obj)] = parse(DENY, namespace="ops")
    assert obj["metadata"]["namespace"] == "ops"


def test_a_bad_field_is_refused_by_its_path():
    bad = DENY.replace("ingress: []", "ingress: [{from: [{ipBlock: {cidr: 10.0.0.0/8, except: [10.0.0.0/8]}}]}]")
    with pytest.raises(SpecError, match=r"spec\.ingress\[0\]\.from\[0\]\.ipBlock\.except\[0\]: Invalid value"):
        parse(bad)
    with pytest.raises(SpecError, match=r"spec\.podSelectr: unknown field"):
        parse(DENY.replace("podSelector", "podSelectr"))
    with pytest.raises(SpecError, match="does not match the namespace from -n"):
        parse(DENY.replace("name: web-deny-all}", "name: web-deny-all, namespace: a}"), namespace="b")


def test_store_created_configured_unchanged_and_deleted():
    data: dict = {}
    [(_, obj)] = parse(DENY)
    assert netpols.put(data, obj, ["default"], create_only=False) == "created"
    assert netpols.put(data, obj, ["default"], create_only=False) == "unchanged"
    changed = {**obj, "spec": {"podSelector": {}}}
    assert netpols.put(data, changed, ["default"], create_only=False) == "configured"
    with pytest.raises(netpols.Refused, match="AlreadyExists"):
        netpols.put(data, obj, ["default"], create_only=True)
    with pytest.raises(netpols.Refused, match='namespaces "default" not found'):
        netpols.put({}, obj, ["ops"], create_only=False)
    assert netpols.pod_selector_text(netpols.listed(data, "default", None)[0]) == "<none>"
    assert netpols.listed(data, "ops", None) == []
    assert netpols.drop(data, "default", "web-deny-all") and not netpols.drop(data, "default", "web-deny-all")


def test_a_topology_does_not_take_policies():
    from podnet.lab import spec

    data = {**spec.tutorial_data(), "workloads": [yaml.safe_load(DENY)]}
    with pytest.raises(SpecError, match="apply it with `podnet lab apply -f`"):
        spec.parse(data)


def test_namespace_labels_from_manifests_and_label():
    from podnet.lab import pod_objects

    objs = parse("apiVersion: v1\nkind: Namespace\nmetadata: {name: ops, labels: {team: ops}}")
    assert objs == [("Namespace", "ops"), ("NamespaceLabels", ("ops", {"team": "ops"}))]
    data: dict = {}
    assert netpols.set_namespace_labels(data, "ops", {"team": "ops"})
    assert not netpols.set_namespace_labels(data, "ops", {"team": "ops"})
    obj = pod_objects.namespace_object("ops", netpols.namespace_labels(data)["ops"])
    assert obj["metadata"]["labels"] == {"team": "ops", "kubernetes.io/metadata.name": "ops"}
    netpols.drop_namespace(data, "ops")
    assert netpols.namespace_labels(data) == {}
    with pytest.raises(SpecError, match="metadata.labels"):
        parse("apiVersion: v1\nkind: Namespace\nmetadata: {name: ops, labels: {'a b': x}}")


def test_describe_says_what_a_policy_does_and_whom_it_selects():
    [(_, obj)] = parse(
        DENY.replace("ingress: []", "ingress: [{from: [{podSelector: {matchLabels: {app: c}}}], ports: [{port: 80}]}]")
    )
    pods = [{"name": "web-1", "namespace": "default", "labels": {"app": "web"}}, {"name": "x", "labels": {}}]
    lines = dict(netpols.describe(obj, pods))
    assert lines["PodSelector"] == "app=web" and lines["Selects pods"] == "web-1"
    assert lines["  From"] == "PodSelector: app=c" and lines["  To Port"] == "80/TCP"
    assert "Not affecting egress traffic" in lines and lines["Policy Types"] == "Ingress"
