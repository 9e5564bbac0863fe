"""Services and their endpoints, written as the objects every node's podnet-proxy reads
(what the API server and kube's EndpointSlice controller do on a real cluster)."""

from __future__ import annotations

import os
import time
from collections.abc import Iterable

from podnet.lab import objects, selectors
from podnet.lab.pod import RUNNING, TERMINATING, Pod
from podnet.lab.service_addresses import ServiceAddresses
from podnet.lab.spec import LabSpec, Service

# every write makes every proxy resync: changes go out in batches at most this often
WRITE_EVERY = 0.25


def endpoints(svc: Service, pods: Iterable[Pod]) -> list[objects.Endpoint]:
    """The pods a Service selects that have an address: ready ones, and terminating ones
    still draining (serving, not ready), as kube's EndpointSlices show them."""
    eps = []
    for p in pods:
        if p.ip is None or not selectors.selects(svc.selector, p.labels):
            continue
        if p.phase == RUNNING:
            eps.append(objects.Endpoint(p.name, p.ip, p.node, True, True, False))
        elif p.phase == TERMINATING and not p.exited:
            eps.append(objects.Endpoint(p.name, p.ip, p.node, False, True, True))
    return eps


class EndpointSliceWriter:
    def __init__(self, objects_dir: str):
        self.objects_dir = objects_dir
        self.pending = True
        self.last_write = 0.0

    def sync(self, spec: LabSpec | None, addresses: ServiceAddresses, pods: Iterable[Pod], changed: bool) -> None:
        self.pending = self.pending or changed
        now = time.monotonic()
        if not self.pending or not spec or now - self.last_write < WRITE_EVERY:
            return
        self.pending, self.last_write = False, now
        os.makedirs(self.objects_dir, exist_ok=True)
        pods = list(pods)
        wanted = set()
        for svc in spec.services:
            wanted.add(svc.name)
            objects.write(
                objects.service_path(self.objects_dir, svc.name),
                objects.service_object(svc, addresses.cluster_ips[svc.name], addresses.node_ports_of(svc)),
            )
            objects.write(
                objects.slice_path(self.objects_dir, svc.name), objects.endpoint_slice(svc, endpoints(svc, pods))
            )
        for entry in os.listdir(self.objects_dir):
            _kind, _, name = entry.removesuffix(".json").partition("-")
            if entry.endswith(".json") and name not in wanted:
                objects.remove(os.path.join(self.objects_dir, entry))
