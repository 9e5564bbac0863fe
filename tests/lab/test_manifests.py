"""Kubernetes manifests -> lab desired state (pure: no root, no kernel)."""

from __future__ import annotations

import copy
import os

import pytest
from dnslib import QTYPE, RCODE, DNSRecord

from podnet.lab import dns, manifests, spec

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TUTORIAL = os.path.join(ROOT, "netns-labs", "tutorial")

DEPLOY = {
    "apiVersion": "apps/v1",
    "kind": "Deployment",
    "metadata": {"name": "web", "namespace": "shop", "annotations": {"a": "b"}},
    "spec": {
        "replicas": 2,
        "selector": {"matchLabels": {"app": "web"}},
        "strategy": {"rollingUpdate": {"maxSurge": "50%", "maxUnavailable": 1}},
        "template": {
            "metadata": {"labels": {"app": "web", "tier": "fe"}},
            "spec": {
                "containers": [
                    {
                        "name": "web",
                        "image": "registry:5000/team/web:v3",
                        "imagePullPolicy": "Always",
                        "resources": {"limits": {"cpu": "1"}},
                        "ports": [{"name": "http", "containerPort": 8081}],
                        "readinessProbe": {"httpGet": {"path": "/healthz", "port": "http"}, "periodSeconds": 2},
                    }
                ]
            },
        },
    },
}


def parse(*docs, namespace=None):
    return manifests.parse_objects(list(docs), "test", namespace)


def test_the_tutorial_manifests_parse_and_merge_into_a_valid_lab():
    objs = manifests.load(TUTORIAL)
    kinds = sorted((k, o.name) for k, o in objs)
    assert ("Deployment", "frontend-canary") in kinds and ("Service", "redis") in kinds
    s = spec.check(manifests.merge(spec.default(), objs))
    front = s.deployment("frontend")
    assert front.workload.kind == "http" and front.version == "v1" and front.workload.backend == "redis"
    assert s.deployment("redis").workload.kind == "counter"
    assert s.deployment("frontend-canary").version == "v2"
    assert s.service("frontend").type == "LoadBalancer"
    assert spec.parse(spec.to_dict(s)) == s  # what desired.json stores reads back the same


def test_a_deployment_keeps_namespace_strategy_probe_and_image():
    ((kind, d),) = parse(DEPLOY)
    assert kind == "Deployment" and d.namespace == "shop" and d.image.endswith(":v3") and d.version == "v3"
    assert d.workload.port == 8081 and d.rollout_bounds() == (1, 1)
    assert d.readiness.kind == "httpGet" and d.readiness.port == 8081 and d.readiness.period == 2
    assert manifests.deployment_object(d)["spec"]["template"]["spec"]["containers"][0]["image"] == d.image


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda o: o["spec"]["template"]["spec"].update(volumes=[]), "spec.template.spec.volumes: not supported"),
        (lambda o: o["spec"]["template"]["metadata"]["labels"].update(app="x"), "`selector` does not match"),
        (lambda o: o["spec"]["template"]["spec"]["containers"].append({"name": "b"}), "exactly one container"),
        (lambda o: o["spec"]["selector"].update(matchExpressions=[]), "spec.selector.matchExpressions: not"),
        (lambda o: o["spec"]["strategy"].update(type="Blue"), "spec.strategy.type"),
        (lambda o: o["spec"]["template"]["spec"]["containers"][0].update(volumeMounts=[]), "volumeMounts: not"),
    ],
)
def test_what_a_lab_cannot_honour_is_refused_by_its_path(change, message):
    obj = copy.deepcopy(DEPLOY)
    change(obj)
    with pytest.raises(spec.SpecError, match=message.replace("`", ".").replace("(", r"\(")):
        parse(obj)


def test_services_of_every_kind():
    base = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"}}
    head = {**base, "spec": {"clusterIP": "None", "selector": {"a": "b"}, "ports": [{"port": 80}]}}
    ports = [{"name": "web", "port": 80, "targetPort": "http"}]
    lb = {**base, "spec": {"type": "LoadBalancer", "externalTrafficPolicy": "Local", "sessionAffinity": "ClientIP",
                           "selector": {"a": "b"}, "ports": ports}}  # fmt: skip
    ((_, h),) = parse(head)
    ((_, b),) = parse(lb)
    assert h.headless and b.type == "LoadBalancer" and b.external_traffic_policy == "Local"
    assert b.ports[0].target_port == "http" and b.session_affinity == "ClientIP"
    with pytest.raises(spec.SpecError, match="spec.type: ExternalName"):
        parse({**base, "spec": {"type": "ExternalName"}})


def test_lists_namespaces_and_minus_n():
    lst = {
        "apiVersion": "v1",
        "kind": "List",
        "items": [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}}, DEPLOY],
    }
    objs = parse(lst)
    assert [k for k, _ in objs] == ["Namespace", "NamespaceLabels", "Deployment"]
    with pytest.raises(spec.SpecError, match="does not match the namespace from -n"):
        parse(DEPLOY, namespace="other")
    with pytest.raises(spec.SpecError, match="does not exist"):
        spec.check(manifests.merge(spec.default(), parse(DEPLOY)))
    with pytest.raises(spec.SpecError, match="batch/v1 Job is not supported"):
        parse({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "j"}})


def test_images_pick_workloads():
    def workload(image, **extra):
        return manifests.workload_of({"image": image, **extra}, "c")

    assert workload("redis:7")[0].kind == "counter"
    assert workload("gcr.io/x/frontend")[1] == "latest"
    assert workload("registry.k8s.io/coredns/coredns:v1.11.1")[0].kind == "dns"
    w, _ = workload("busybox", command=["sleep", "3600"])
    assert w.kind == "command" and w.command == ("sleep", "3600")


def test_cluster_dns_answers():
    table = dns.records(
        [
            {"name": "redis", "namespace": "default", "clusterIP": "10.96.0.20",
             "ports": [{"name": "redis", "protocol": "TCP", "port": 6379}]},
            {"name": "h", "namespace": "default", "clusterIP": None, "pods": ["10.244.1.2", "10.244.2.3"]},
        ]
    )  # fmt: skip

    def ask(name, qtype="A"):
        return dns.answer(DNSRecord.question(name, qtype), table)

    assert [str(r.rdata) for r in ask("redis.default.svc.cluster.local").rr] == ["10.96.0.20"]
    assert len(ask("h.default.svc.cluster.local").rr) == 2
    srv = ask("_redis._tcp.redis.default.svc.cluster.local", "SRV")
    assert srv.rr[0].rtype == QTYPE.SRV and srv.rr[0].rdata.port == 6379
    assert ask("nope.default.svc.cluster.local").header.rcode == RCODE.NXDOMAIN
    assert dns.dns_ip("10.96.0.0/16") == "10.96.0.10"
    assert "search ns1.svc.cluster.local svc.cluster.local cluster.local" in dns.resolv_conf("ns1", "10.96.0.10")
