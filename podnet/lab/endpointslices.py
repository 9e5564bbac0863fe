"""Services and their endpoints, written into the lab's etcd as the Kubernetes objects every
node's agent reads (`v1` Service and `discovery.k8s.io/v1` EndpointSlice under
PREFIX/registry/...): what the API server and kube's EndpointSlice controller do on a real
cluster."""

from __future__ import annotations

import json
from collections.abc import Iterable

from cluster.etcd import EtcdClient
from cluster.etcd_source import decode, key_for, registry_root
from cluster.source import ref_of
from podnet.lab import objects, selectors
from podnet.lab.etcd_shadow import EtcdShadow
from podnet.lab.pod import RUNNING, TERMINATING, Pod
from podnet.lab.service_addresses import ServiceAddresses
from podnet.lab.spec import LabSpec, Service

# every write makes every agent's proxy resync: changes go out in batches at most this often
WRITE_EVERY = 0.25
# ... and while many pods start at once (a lab coming up, a big scale), in bigger batches: an
# agent's sync costs in proportion to the endpoints, and each costs the CPU the pods need. A
# burst lasts until no pod is starting: its last few pods, ready one by one, would otherwise
# each cost every node a sync of the whole Service
BURST, BURST_WRITE_EVERY = 20, 1.0
# ... and one second more per this many ready endpoints
ENDPOINTS_PER_SECOND = 100
# kube's EndpointSlice controller (--max-endpoints-per-slice): a pod's change then rewrites one
# slice of a hundred endpoints, not the Service's thousand, in etcd and in every agent's parse
MAX_PER_SLICE = 100


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


class Placement:
    """Which slice each endpoint of each Service is in, kept from sync to sync as kube's
    controller keeps it: an endpoint stays in its slice, a new one goes to the first slice
    with room, so one pod's change touches one slice."""

    def __init__(self) -> None:
        self.slice_of: dict[str, dict[str, int]] = {}  # Service key -> pod -> slice index

    def split(self, key: str, eps: list[objects.Endpoint]) -> list[list[objects.Endpoint]]:
        """The endpoints in slices (at least one, perhaps empty; never an empty one after it)."""
        old = self.slice_of.get(key, {})
        now = {e.pod for e in eps}
        placed = {pod: i for pod, i in old.items() if pod in now}
        sizes: dict[int, int] = {}
        for i in placed.values():
            sizes[i] = sizes.get(i, 0) + 1
        for e in eps:
            if e.pod not in placed:
                i = next(i for i in range(len(eps) + 1) if sizes.get(i, 0) < MAX_PER_SLICE)
                placed[e.pod], sizes[i] = i, sizes.get(i, 0) + 1
        self.slice_of[key] = placed
        out: list[list[objects.Endpoint]] = [[] for _ in range(max(sizes, default=0) + 1)]
        for e in eps:
            out[placed[e.pod]].append(e)
        return out

    def keep(self, keys: set[str]) -> None:
        """Forget the Services that are no longer desired."""
        self.slice_of = {k: v for k, v in self.slice_of.items() if k in keys}

    def learn(self, key: str, index: int, pods: list[str]) -> None:
        """What a slice already in etcd holds (a controller taking over keeps the placement)."""
        for pod in pods:
            self.slice_of.setdefault(key, {})[pod] = index


class EndpointSliceWriter:
    """Keeps the lab's objects in etcd equal to the desired Services and their endpoints.

    Each sync writes only the objects that changed (etcd_shadow.py). Objects that others
    put into the lab's etcd (`podnet cluster apply`) are not the lab's and are left alone: only
    objects carrying the lab's managed-by label are ever replaced or removed.
    """

    def __init__(self, client: EtcdClient, prefix: str):
        self.client, self.prefix = client, prefix
        self.shadow = EtcdShadow(client, "Services and EndpointSlices")
        self.placement = Placement()
        self.bursting = False

    @staticmethod
    def burst_every(pods: Iterable[Pod]) -> float:
        """How often to write while many pods start: an agent's sync costs in proportion to the
        endpoints, and only the last batch decides when the burst is served, so a big burst
        goes out in fewer, bigger batches."""
        return BURST_WRITE_EVERY * (1 + sum(1 for p in pods if p.ready) / ENDPOINTS_PER_SECOND)

    def _ours_in_etcd(self) -> dict[str, str]:
        """What an earlier controller of this lab wrote (a controller taking over starts here)."""
        out = {}
        for kv in self.client.get_prefix(registry_root(self.prefix)):
            d = decode(self.prefix, kv)
            labels = d[1].get("metadata", {}).get("labels", {}) if d is not None else {}
            if labels.get(objects.MANAGED_BY_LABEL) == objects.MANAGED_BY:
                out[kv.key] = kv.value
                # every agent has programmed them once it has seen this revision
                self.shadow.revision = max(self.shadow.revision, kv.mod_revision)
                if d is not None and d[1].get("kind") == "EndpointSlice":
                    self._learn(d[1])
        return out

    def _learn(self, obj: dict) -> None:
        meta = obj.get("metadata", {})
        service = meta.get("labels", {}).get("kubernetes.io/service-name", "")
        name, first = meta.get("name", ""), f"{service}-lab"
        index = "0" if name == first else name.removeprefix(f"{first}-")
        if not service or not index.isdigit():
            return
        pods = [e.get("targetRef", {}).get("name", "") for e in obj.get("endpoints", [])]
        self.placement.learn(f"{meta.get('namespace', '')}/{service}", int(index), pods)

    def wanted(self, spec: LabSpec, addresses: ServiceAddresses, pods: list[Pod]) -> dict[str, str]:
        out = {}
        self.placement.keep({svc.key for svc in spec.services})
        for svc in spec.services:
            ip = addresses.cluster_ips.get(svc.key)
            if ip is None and not svc.headless:
                continue
            parts = self.placement.split(svc.key, endpoints(svc, pods))
            for obj in (
                objects.service_object(svc, spec, ip, addresses.node_ports_of(svc), addresses.lb_ip(svc.key)),
                *(objects.endpoint_slice(svc, spec, eps, i) for i, eps in enumerate(parts)),
            ):
                out[key_for(self.prefix, ref_of(obj))] = json.dumps(obj, sort_keys=True)
        return out

    def sync(
        self, spec: LabSpec | None, addresses: ServiceAddresses, pods: Iterable[Pod], changed: bool, starting: int = 0
    ) -> None:
        """Write what changed, if a batch is due. `starting`: how many pods are on their way up."""
        self.shadow.note(changed)
        if not spec or not self.shadow.pending:
            return
        pods = list(pods)
        self.bursting = starting > BURST or (self.bursting and starting > 0)
        every = self.burst_every(pods) if self.bursting else WRITE_EVERY
        if not self.shadow.due(every):
            return
        now = self.shadow.last_write
        if self.shadow.write(self._ours_in_etcd, lambda: self.wanted(spec, addresses, pods)):
            for p in pods:  # from now on the proxies are programming them (Pod.available)
                if p.ready and p.ready_at is not None and (p.published_at or -1.0) < p.ready_at:
                    p.published_at, p.published_revision = now, self.shadow.revision

    @property
    def revision(self) -> int:
        """The store revision of the last write (0 before the first)."""
        return self.shadow.revision
