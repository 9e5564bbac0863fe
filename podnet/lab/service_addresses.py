"""Service addresses: a ClusterIP for every Service from the cluster IPAM (ipam.clusterip,
stored with the lab) and a node port for every port of a NodePort Service, in kube's range,
as the API server hands them out. An address stays with its Service while it lives."""

from __future__ import annotations

from typing import Any

from ipam.clusterip import ClusterIPAllocator
from ipam.store_url import open_store
from podnet.lab.spec import NODEPORT_RANGE, Service


class ServiceAddresses:
    def __init__(self, store_dir: str):
        self.store_dir = store_dir
        self.allocator: ClusterIPAllocator | None = None
        self.cluster_ips: dict[str, str] = {}  # NAMESPACE/NAME -> ClusterIP
        self.node_ports: dict[tuple[str, int], int] = {}  # (NAMESPACE/NAME, port) -> node port
        self.lb_ips: dict[str, str] = {}  # NAMESPACE/NAME -> its address from the LoadBalancer pool

    def sync(self, services: tuple[Service, ...], service_cidr: str, lb_pool: list[str] | None = None) -> None:
        """Give new Services their addresses and take them back from Services that went."""
        if self.allocator is None:
            self.allocator = ClusterIPAllocator(open_store(f"file:{self.store_dir}"), [service_cidr])
        wanted = {s.key: s for s in services if not s.headless}
        for name in list(self.cluster_ips):
            if name not in wanted or (wanted[name].cluster_ip not in (None, self.cluster_ips[name])):
                self.allocator.release(self.cluster_ips.pop(name))
        # a LoadBalancer's address goes back to the pool when its Service goes (or changes type)
        balanced = {s.key for s in services if s.type == "LoadBalancer"}
        for name in list(self.lb_ips):
            if name not in balanced:
                del self.lb_ips[name]
        free = [ip for ip in lb_pool or [] if ip not in self.lb_ips.values()]
        for svc in services:
            if svc.type == "LoadBalancer" and svc.key not in self.lb_ips and free:
                self.lb_ips[svc.key] = free.pop(0)
        for key in list(self.node_ports):
            if key[0] not in wanted:
                del self.node_ports[key]
        used_ports = {p.node_port for s in services for p in s.ports if p.node_port}
        used_ports |= set(self.node_ports.values())
        # Services that ask for an address first, so none is handed to another before them
        for svc in sorted(services, key=lambda s: s.cluster_ip is None):
            if svc.headless:
                continue
            if svc.key not in self.cluster_ips:
                owner = svc.key.replace("/", ".")
                self.cluster_ips[svc.key] = str(self.allocator.allocate(svc.cluster_ip, owner=owner))
            if svc.type == "ClusterIP":
                continue
            for p in svc.ports:
                if p.node_port:
                    self.node_ports[(svc.key, p.port)] = p.node_port
                elif (svc.key, p.port) not in self.node_ports:
                    lo, hi = NODEPORT_RANGE
                    port = next(n for n in range(lo, hi + 1) if n not in used_ports)
                    self.node_ports[(svc.key, p.port)] = port
                    used_ports.add(port)

    def cluster_ip(self, key: str) -> str | None:
        """The ClusterIP of NAMESPACE/NAME (a bare NAME is in the default namespace)."""
        return self.cluster_ips.get(key if "/" in key else f"default/{key}")

    def lb_ip(self, key: str) -> str | None:
        return self.lb_ips.get(key)

    def node_ports_of(self, svc: Service) -> dict[int, int | None]:
        return {p.port: self.node_ports.get((svc.key, p.port)) for p in svc.ports}

    # -- in a checkpoint ----------------------------------------------------------------
    def record(self) -> dict[str, Any]:
        return {
            "clusterIPs": dict(self.cluster_ips),
            "nodePorts": [[svc, port, node_port] for (svc, port), node_port in sorted(self.node_ports.items())],
            "loadBalancerIPs": dict(self.lb_ips),
        }

    def restore(self, record: dict[str, Any]) -> None:
        self.cluster_ips = dict(record.get("clusterIPs", {}))
        self.node_ports = {(svc, port): node_port for svc, port, node_port in record.get("nodePorts", [])}
        self.lb_ips = dict(record.get("loadBalancerIPs", {}))
