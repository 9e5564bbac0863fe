"""The lab's Services and endpoints as the Kubernetes objects each node's agent reads:
`v1` Service and `discovery.k8s.io/v1` EndpointSlice (endpointslices.py puts them into etcd)."""

from __future__ import annotations

from dataclasses import dataclass

from podnet.lab.spec import Service

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
        "metadata": {"name": svc.name, "namespace": NAMESPACE, "labels": {MANAGED_BY_LABEL: MANAGED_BY}},
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
                "targetRef": {"kind": "Pod", "namespace": NAMESPACE, "name": e.pod},
            }
            for e in sorted(endpoints, key=lambda e: e.pod)
        ],
        "ports": [{"name": p.name, "protocol": p.protocol, "port": p.target_port} for p in svc.ports],
    }
