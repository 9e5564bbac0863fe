"""Synthetic Services and EndpointSlices, built as the objects module's dataclasses (no YAML),
for tests and benchmarks that drive the proxier in-process."""

from __future__ import annotations

from proxy.objects import Endpoint, EndpointPort, EndpointSlice, Service, ServicePort
from proxy.source import object_key
from proxy.trackers import Trackers

NODE = "node-a"


def cluster_ip(i: int) -> str:
    return f"10.{96 + i // 65536}.{(i // 256) % 256}.{i % 256}"


def endpoint_ip(i: int, j: int) -> str:
    n = i * 16 + j
    return f"10.{128 + n // 65536}.{(n // 256) % 256}.{n % 256}"


def service(i: int, **spec) -> Service:
    ports = spec.pop("ports", (ServicePort(name="http", protocol="TCP", port=80),))
    return Service(namespace="bench", name=f"svc-{i:05d}", cluster_ips=(cluster_ip(i),), ports=ports, **spec)


def endpoint_slice(
    i: int, endpoints: int, local: set[int] = frozenset(), port: int = 8080, name: str = "http", protocol: str = "TCP"
) -> EndpointSlice:
    eps = tuple(
        Endpoint(addresses=(endpoint_ip(i, j),), node_name=NODE if j in local else "node-b") for j in range(endpoints)
    )
    return EndpointSlice("bench", f"svc-{i:05d}-x", f"svc-{i:05d}", "IPv4", eps, (EndpointPort(name, protocol, port),))


def feed(trackers: Trackers, *objects) -> None:
    for obj in objects:
        trackers.update(object_key(obj), type(obj), obj)
    trackers.synced = True


def remove(trackers: Trackers, obj) -> None:
    trackers.update(object_key(obj), type(obj), None)
