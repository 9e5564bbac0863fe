"""Services and their endpoints, written into the lab's etcd as the Kubernetes objects every
node's agent reads (`v1` Service and `discovery.k8s.io/v1` EndpointSlice under
PREFIX/registry/...): what the API server and kube's EndpointSlice controller do on a real
cluster."""

from __future__ import annotations

import json
import time
from collections.abc import Iterable

from cluster.etcd import EtcdClient, EtcdError
from cluster.etcd_source import decode, key_for, registry_root
from cluster.source import ref_of
from podnet.lab import objects, selectors
from podnet.lab.pod import RUNNING, TERMINATING, Pod, log
from podnet.lab.service_addresses import ServiceAddresses
from podnet.lab.spec import LabSpec, Service

# every write makes every agent's proxy resync: changes go out in batches at most this often
WRITE_EVERY = 0.25
# ... and while many pods start at once (a lab coming up, a big scale), in bigger batches: an
# agent's sync costs in proportion to the endpoints, and each costs the CPU the pods need
BURST, BURST_WRITE_EVERY = 20, 1.0


def endpoints(svc: Service, pods: Iterable[Pod]) -> list[objects.Endpoint]:
    """The pods a Service selects that have an address: ready ones, and terminating ones
    still draining (serving, not ready), as kube's EndpointSlices show them."""
    eps = []
    for p in pods:
        if p.ip is None or p.namespace != svc.namespace or not selectors.selects(svc.selector, p.labels):
            continue
        if p.phase == RUNNING and not p.restarting:
            # a pod whose readiness probe fails stays listed, not ready (kube: serving=ready then)
            eps.append(objects.Endpoint(p.name, p.ip, p.node, p.ready, p.ready, False))
        elif p.phase == TERMINATING and not p.exited:
            eps.append(objects.Endpoint(p.name, p.ip, p.node, False, True, True))
    return eps


class EndpointSliceWriter:
    """Keeps the lab's objects in etcd equal to the desired Services and their endpoints.

    A shadow copy of what it wrote makes each sync one transaction of only the objects that
    changed (the agents' watches then see one revision, and resync once). Objects that others
    put into the lab's etcd (`podnet cluster apply`) are not the lab's and are left alone: only
    objects carrying the lab's managed-by label are ever replaced or removed.
    """

    def __init__(self, client: EtcdClient, prefix: str):
        self.client, self.prefix = client, prefix
        self.written: dict[str, str] | None = None  # key -> JSON; None until read from etcd
        self.pending = True
        self.last_write = 0.0
        self.failing = False

    def _ours_in_etcd(self) -> dict[str, str]:
        """What an earlier controller of this lab wrote (a controller taking over starts here)."""
        out = {}
        for kv in self.client.get_prefix(registry_root(self.prefix)):
            d = decode(self.prefix, kv)
            labels = d[1].get("metadata", {}).get("labels", {}) if d is not None else {}
            if labels.get(objects.MANAGED_BY_LABEL) == objects.MANAGED_BY:
                out[kv.key] = kv.value
        return out

    def wanted(self, spec: LabSpec, addresses: ServiceAddresses, pods: list[Pod]) -> dict[str, str]:
        out = {}
        for svc in spec.services:
            ip = addresses.cluster_ips.get(svc.key)
            if ip is None and not svc.headless:
                continue
            for obj in (
                objects.service_object(svc, spec, ip, addresses.node_ports_of(svc), addresses.lb_ip(svc.key)),
                objects.endpoint_slice(svc, spec, endpoints(svc, pods)),
            ):
                out[key_for(self.prefix, ref_of(obj))] = json.dumps(obj, sort_keys=True)
        return out

    def sync(
        self, spec: LabSpec | None, addresses: ServiceAddresses, pods: Iterable[Pod], changed: bool, starting: int = 0
    ) -> None:
        """Write what changed, if a batch is due. `starting`: how many pods are on their way up."""
        self.pending = self.pending or changed
        now = time.monotonic()
        every = BURST_WRITE_EVERY if starting > BURST else WRITE_EVERY
        if not self.pending or not spec or now - self.last_write < every:
            return
        self.last_write = now
        try:
            if self.written is None:
                self.written = self._ours_in_etcd()
            pods = list(pods)
            want = self.wanted(spec, addresses, pods)
            puts = {k: v for k, v in want.items() if self.written.get(k) != v}
            gone = sorted(self.written.keys() - want.keys())
            if puts or gone:
                self.client.put_all(puts, gone)
            self.written = want
            self.pending = False
            for p in pods:  # from now on the proxies are programming them (Pod.available)
                if p.ready and p.ready_at is not None and (p.published_at or -1.0) < p.ready_at:
                    p.published_at = now
            if self.failing:
                log("etcd answers again: Services and EndpointSlices written")
                self.failing = False
        except EtcdError as e:  # etcd restarting: the agents keep their rules; try again next tick
            if not self.failing:
                log(f"cannot write Services and EndpointSlices to etcd yet: {e}")
            self.failing = True
