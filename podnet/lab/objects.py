"""The lab's Services and endpoints as the Kubernetes objects each node's agent reads:
`v1` Service and `discovery.k8s.io/v1` EndpointSlice (endpointslices.py puts them into etcd)."""

from __future__ import annotations

from dataclasses import dataclass

from podnet.lab.spec import LabSpec, Service

NAMESPACE = "default"
MANAGED_BY = "podnet-lab"
MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"  # on every object the lab writes: what it may replace


@dataclass(frozen=True)
class Endpoint:
    pod: str
    ip: str
    node: str
    ready: bool
    serving: bool
    terminating: bool


def service_object(svc: Service, spec: LabSpec, cluster_ip: str | None, node_ports: dict, lb_ip: str | None) -> dict:
    """The `v1` Service as the API server would hold it (with status.loadBalancer)."""
    from podnet.lab import manifests

    obj = manifests.service_object(svc, spec, cluster_ip, node_ports, lb_ip)
    obj["metadata"]["labels"] = {MANAGED_BY_LABEL: MANAGED_BY}
    return obj


def slice_name(svc: Service, index: int) -> str:
    """The Service's index-th EndpointSlice (the first keeps the name a one-slice lab had)."""
    return f"{svc.name}-lab" if index == 0 else f"{svc.name}-lab-{index}"


def endpoint_slice(svc: Service, spec: LabSpec, endpoints: list[Endpoint], index: int = 0) -> dict:
    from podnet.lab import manifests

    return {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": slice_name(svc, index),
            "namespace": svc.namespace,
            "labels": {
                "kubernetes.io/service-name": svc.name,
                "endpointslice.kubernetes.io/managed-by": MANAGED_BY,
                MANAGED_BY_LABEL: MANAGED_BY,
            },
        },
        "addressType": "IPv4",
        "endpoints": [
            {
                "addresses": [e.ip],
                "conditions": {"ready": e.ready, "serving": e.serving, "terminating": e.terminating},
                "nodeName": e.node,
                "targetRef": {"kind": "Pod", "namespace": svc.namespace, "name": e.pod},
            }
            for e in sorted(endpoints, key=lambda e: e.pod)
        ],
        "ports": [
            {"name": p.name, "protocol": p.protocol, "port": manifests.target_port(svc, p, spec)} for p in svc.ports
        ],
    }
