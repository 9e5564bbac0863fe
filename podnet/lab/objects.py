"""The lab's Services and endpoints as the Kubernetes objects each node's podnet-proxy
reads: `v1` Service and `discovery.k8s.io/v1` EndpointSlice, one JSON file each, written
atomically into the lab's objects directory."""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import dataclass

from podnet.lab.spec import Service

NAMESPACE = "default"
MANAGED_BY = "podnet-lab"


@dataclass(frozen=True)
class Endpoint:
    pod: str
    ip: str
    node: str
    ready: bool
    serving: bool
    terminating: bool


def service_object(svc: Service, cluster_ip: str, node_ports: dict[int, int | None]) -> dict:
    ports = []
    for p in svc.ports:
        port = {"name": p.name, "protocol": p.protocol, "port": p.port, "targetPort": p.target_port}
        if svc.type == "NodePort":
            port["nodePort"] = node_ports[p.port]
        ports.append(port)
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": svc.name, "namespace": NAMESPACE},
        "spec": {
            "type": svc.type,
            "clusterIP": cluster_ip,
            "clusterIPs": [cluster_ip],
            "ipFamilies": ["IPv4"],
            "selector": dict(svc.selector),
            "ports": ports,
        },
    }


def endpoint_slice(svc: Service, endpoints: list[Endpoint]) -> dict:
    return {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": f"{svc.name}-lab",
            "namespace": NAMESPACE,
            "labels": {"kubernetes.io/service-name": svc.name, "endpointslice.kubernetes.io/managed-by": MANAGED_BY},
        },
        "addressType": "IPv4",
        "endpoints": [
            {
                "addresses": [e.ip],
                "conditions": {"ready": e.ready, "serving": e.serving, "terminating": e.terminating},
                "nodeName": e.node,
                "targetRef": {"kind": "Pod", "namespace": NAMESPACE, "name": e.pod},
            }
            for e in sorted(endpoints, key=lambda e: e.pod)
        ],
        "ports": [{"name": p.name, "protocol": p.protocol, "port": p.target_port} for p in svc.ports],
    }


def service_path(objects_dir: str, name: str) -> str:
    return os.path.join(objects_dir, f"service-{name}.json")


def slice_path(objects_dir: str, name: str) -> str:
    return os.path.join(objects_dir, f"endpointslice-{name}.json")


def write(path: str, obj: dict) -> bool:
    """Write only when the content changes (each write makes every proxy resync)."""
    text = json.dumps(obj, indent=1, sort_keys=True) + "\n"
    try:
        with open(path) as f:
            if f.read() == text:
                return False
    except FileNotFoundError:
        pass
    tmp = f"{path}.tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)
    return True


def remove(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
