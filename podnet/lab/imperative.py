"""kubectl's imperative commands as the manifests they stand for: `create deployment`,
`create namespace` and `expose` build the object kubectl would send to the API server, and the
lab then takes it through the same parser as `apply -f` (manifests.py), so a typo is refused
with the same words and a made object is the same as an applied one.

As kubectl: `create deployment NAME --image=IMAGE [-- COMMAND ARGS]` labels its pods
`app: NAME`; `expose` copies the selector of what it exposes, takes the port from --port or
else from the container ports (every port of a multi-port container, named `port-1`, ...),
and the target port from --target-port or else the port. Everything here is pure.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from podnet.lab.images import image_name
from podnet.lab.spec import SpecError

SERVICE_TYPES = ("ClusterIP", "NodePort", "LoadBalancer")


def deployment_manifest(
    name: str, image: str, replicas: int, port: int | None, command: tuple[str, ...], namespace: str | None
) -> dict:
    """What `kubectl create deployment NAME --image=IMAGE [--port P] [-- COMMAND...]` sends."""
    container: dict[str, Any] = {"name": image_name(image), "image": image}  # kubectl names it so
    if command:
        container["command"] = list(command)
    if port is not None:
        container["ports"] = [{"containerPort": port}]
    labels = {"app": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _metadata(name, namespace, labels),
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {"metadata": {"labels": labels}, "spec": {"containers": [container]}},
        },
    }


def pod_manifest(
    name: str,
    image: str,
    labels: dict[str, str],
    port: int | None,
    command: tuple[str, ...],
    namespace: str | None,
    env: dict[str, str],
) -> dict:
    """What `kubectl run NAME --image=IMAGE [-l ...] [--port P] [--env K=V] [-- COMMAND...]` sends
    (kubectl run passes what follows `--` as the container's args; a lab has no image
    entrypoint, so they are its command)."""
    container: dict[str, Any] = {"name": name, "image": image}
    if command:
        container["command"] = list(command)
    if port is not None:
        container["ports"] = [{"containerPort": port}]
    if env:
        container["env"] = [{"name": k, "value": v} for k, v in env.items()]
    return {"apiVersion": "v1", "kind": "Pod", "metadata": _metadata(name, namespace, labels),
            "spec": {"containers": [container]}}  # fmt: skip


def namespace_manifest(name: str) -> dict:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}


def _metadata(name: str, namespace: str | None, labels: dict[str, str]) -> dict:
    meta: dict[str, Any] = {"name": name, "labels": dict(labels)}
    if namespace:
        meta["namespace"] = namespace
    return meta


@dataclass(frozen=True)
class Exposed:
    """What `expose` reads of the object it exposes."""

    kind: str  # "deployment", "service" or "pod"
    name: str
    namespace: str
    selector: dict[str, str]
    ports: tuple[tuple[int, str], ...]  # (port, protocol) of its containers or of the Service


@dataclass(frozen=True)
class ExposeOptions:
    name: str | None = None
    port: str | None = None
    target_port: str | None = None
    protocol: str | None = None
    type: str | None = None
    selector: dict[str, str] | None = None


def service_manifest(target: Exposed, opts: ExposeOptions) -> dict:
    """The Service `kubectl expose` makes for `target` (SpecError names the flag at fault)."""
    if opts.type is not None and opts.type not in SERVICE_TYPES:
        raise SpecError(f"--type: {opts.type!r} is not one of {', '.join(SERVICE_TYPES)}")
    selector = opts.selector if opts.selector is not None else target.selector
    if not selector:
        what = f"{target.kind}/{target.name}"
        raise SpecError(f"couldn't retrieve selectors via --selector flag or introspection of {what}")
    ports = _service_ports(target, opts)
    spec: dict[str, Any] = {"ports": ports, "selector": dict(selector)}
    if opts.type:
        spec["type"] = opts.type
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _metadata(opts.name or target.name, target.namespace, {} if target.kind == "pod" else selector),
        "spec": spec,
    }


def _service_ports(target: Exposed, opts: ExposeOptions) -> list[dict]:
    if opts.port is not None:
        port = _port(opts.port, "--port")
        protocol = opts.protocol or (target.ports[0][1] if len(target.ports) == 1 else "TCP")
        return [_one_port(port, protocol, opts.target_port)]
    if not target.ports:
        raise SpecError("couldn't find port via --port flag or introspection")
    if len(target.ports) == 1:
        port, protocol = target.ports[0]
        return [_one_port(port, opts.protocol or protocol, opts.target_port)]
    if opts.target_port is not None:
        raise SpecError("--target-port: cannot be used when exposing more than one port (give --port too)")
    return [
        {"name": f"port-{i + 1}", **_one_port(port, opts.protocol or protocol, None)}
        for i, (port, protocol) in enumerate(target.ports)
    ]


def _one_port(port: int, protocol: str, target_port: str | None) -> dict:
    target: int | str = port
    if target_port is not None:
        target = int(target_port) if target_port.isdigit() else target_port  # a named port stays a name
    return {"port": port, "protocol": protocol, "targetPort": target}


def _port(text: str, flag: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 65535:
        raise SpecError(f"{flag}: {text!r} is not a port number (1-65535)")
    return int(text)
