"""kubectl's imperative commands as manifests (podnet/lab/imperative.py), the images whose own
port a lab keeps (images.py) and creation stamps (creation.py): pure, no root."""

from __future__ import annotations

import os

import pytest

from podnet.lab import busybox, creation, images, manifests, names, spec
from podnet.lab.imperative import Exposed, ExposeOptions, deployment_manifest, service_manifest
from podnet.lab.spec import Deployment, SpecError

WEB = Exposed("deployment", "web", "default", {"app": "web"}, ((8080, "TCP"),))


def parsed(doc: dict):
    [(kind, obj)] = manifests.parse_objects([doc], "test")
    return kind, obj


def test_create_deployment_is_what_kubectl_sends():
    doc = deployment_manifest("hello-node", "registry.k8s.io/e2e-test-images/agnhost:2.39", 2, None,
                              ("/agnhost", "netexec", "--http-port=8080"), None)  # fmt: skip
    assert doc["spec"]["selector"]["matchLabels"] == {"app": "hello-node"}
    assert doc["spec"]["template"]["spec"]["containers"][0]["name"] == "agnhost"
    kind, d = parsed(doc)
    assert kind == "Deployment" and d.replicas == 2 and d.labels == {"app": "hello-node"}
    assert (d.workload.kind, d.workload.port) == ("http", 8080)  # agnhost netexec stands for the HTTP workload


def test_expose_takes_the_container_port_and_the_selector():
    doc = service_manifest(WEB, ExposeOptions(type="LoadBalancer", name="my-service"))
    assert doc["metadata"]["name"] == "my-service" and doc["spec"]["selector"] == {"app": "web"}
    assert doc["spec"]["ports"] == [{"port": 8080, "protocol": "TCP", "targetPort": 8080}]
    kind, svc = parsed(doc)
    assert kind == "Service" and svc.type == "LoadBalancer"


def test_expose_port_and_target_port_flags():
    doc = service_manifest(WEB, ExposeOptions(port="80", target_port="http"))
    assert doc["spec"]["ports"] == [{"port": 80, "protocol": "TCP", "targetPort": "http"}]
    doc = service_manifest(WEB, ExposeOptions(port="80"))
    assert doc["spec"]["ports"][0]["targetPort"] == 80  # no --target-port: the port itself


def test_expose_names_each_port_of_a_multi_port_container():
    two = Exposed("deployment", "db", "default", {"app": "db"}, ((5432, "TCP"), (9187, "TCP")))
    ports = service_manifest(two, ExposeOptions())["spec"]["ports"]
    assert [(p["name"], p["port"]) for p in ports] == [("port-1", 5432), ("port-2", 9187)]
    parsed(service_manifest(two, ExposeOptions()))


@pytest.mark.parametrize(
    ("target", "opts", "words"),
    [
        (WEB, ExposeOptions(type="External"), "--type"),
        (WEB, ExposeOptions(port="0"), "--port"),
        (WEB, ExposeOptions(port="http"), "--port"),
        (Exposed("deployment", "x", "default", {"a": "b"}, ()), ExposeOptions(), "couldn't find port"),
        (Exposed("pod", "x", "default", {}, ((80, "TCP"),)), ExposeOptions(), "couldn't retrieve selectors"),
    ],
)
def test_expose_refuses_what_kubectl_refuses(target, opts, words):
    with pytest.raises(SpecError, match=words):
        service_manifest(target, opts)


@pytest.mark.parametrize(
    ("command", "port"),
    [
        (["/agnhost", "netexec", "--http-port=8080"], 8080),
        (["netexec", "--http-port", "9000"], 9000),
        (["/agnhost", "netexec"], 8080),
        (["/agnhost", "serve-hostname", "--port=9376"], 9376),
        (["/agnhost", "pause"], None),
        (["/agnhost", "netexec", "--http-port=http"], None),
        ([], None),
    ],
)
def test_agnhost_http_subcommands(command, port):
    assert images.agnhost_http_port("agnhost", command) == port


def test_an_image_keeps_its_own_port():
    container = {"name": "nginx", "image": "nginx:1.14.2", "ports": [{"containerPort": 8080}]}
    workload, version = manifests.workload_of(container, "c")
    assert (workload.port, version) == (80, "1.14.2")  # nginx answers on 80 whatever containerPort says
    workload, _ = manifests.workload_of({"name": "w", "image": "example.org/web:v1"}, "c")
    assert workload.port == 8080


def test_creation_stamps_come_and_go():
    data: dict = {}
    creation.stamp(data, "service", "shop", "web")
    creation.stamp(data, "deployment", "default", "web")
    assert creation.created(data, "service", "shop", "web", 0.0) > 0
    creation.forget_namespace(data, "shop")
    assert creation.created(data, "service", "shop", "web", 1.0) == 1.0  # as old as the lab
    creation.forget(data, "deployment", "default", "web")
    assert data[creation.KEY] == {}


def test_a_bare_pod_is_one_pod_of_its_own():
    [(kind, pod)] = manifests.parse_objects(
        [{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "dnsutils"},
          "spec": {"containers": [{"name": "c", "image": "registry.k8s.io/e2e-test-images/agnhost:2.39"}],
                   "restartPolicy": "Always"}}], "t")  # fmt: skip
    assert kind == "Pod" and pod.bare and pod.replicas == 1 and pod.labels == {}
    assert spec.parse_deployment(spec.deployment_dict(pod), "d") == pod  # kept in desired.json as it was
    with pytest.raises(SpecError, match=r"spec\.restartPolicy"):
        manifests.parse_objects([{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "x"},
                                  "spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "i"}]}}],
                                "t")  # fmt: skip


def test_a_command_with_no_port_waits_for_nothing_but_itself():
    workload, _ = manifests.workload_of({"name": "b", "image": "busybox", "command": ["sleep", "3600"]}, "c")
    assert (workload.kind, workload.port) == ("command", 0)
    assert manifests.container_object(Deployment("b", workload=workload))["ports"] == []


def test_busybox_clients_try_once(tmp_path, monkeypatch):
    monkeypatch.setattr(names, "STATE_ROOT", str(tmp_path))
    os.makedirs(names.state_dir("lab1"))
    env = busybox.pod_env("lab1", "docker.io/library/busybox:1.28")
    with open(env["WGETRC"]) as f:
        assert f.read().split() == ["tries", "=", "1"]
    assert busybox.pod_env("lab1", "alpine") == env
    assert busybox.pod_env("lab1", "curlimages/curl") == {}
