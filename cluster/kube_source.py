"""Cluster objects from the Kubernetes API (`--objects kubernetes`), through the official
`kubernetes` client library: for each kind, one list, then a watch from the list's
resourceVersion; a 410 Gone (the version was compacted) or a broken watch leads to a fresh
list of that kind, diffed against what was delivered.

NOT tested against a live API server: none can be installed where podnet is developed. The
tests cover configuration loading, the conversion of listed items, and the handling of
watch events read by the library's own `kubernetes.watch.Watch` from recorded JSON.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from typing import Any

from cluster.source import KINDS, Event, Mirror, Sink, ref_of

log = logging.getLogger("podnet.cluster")

RETRY_MIN, RETRY_MAX = 0.5, 10.0
WATCH_TIMEOUT = 300  # seconds the API server keeps one watch open (it ends it, we re-open)

# kind -> (API class name, list method for all namespaces)
LISTERS = {
    "Service": ("CoreV1Api", "list_service_for_all_namespaces"),
    "EndpointSlice": ("DiscoveryV1Api", "list_endpoint_slice_for_all_namespaces"),
    "Node": ("CoreV1Api", "list_node"),
    "ServiceCIDR": ("NetworkingV1Api", "list_service_cidr"),
    "NetworkPolicy": ("NetworkingV1Api", "list_network_policy_for_all_namespaces"),
    "Pod": ("CoreV1Api", "list_pod_for_all_namespaces"),
    "Namespace": ("CoreV1Api", "list_namespace"),
}
# The verbs this source needs on each resource (deploy/daemonset.yaml's ClusterRole names them).
RBAC_VERBS = ("list", "watch")


def load_api_client(kubeconfig: str | None) -> Any:
    """An ApiClient from `kubeconfig`, else the in-cluster service account, else ~/.kube/config."""
    from kubernetes import client, config

    if kubeconfig:
        return config.new_client_from_config(config_file=kubeconfig)
    try:
        config.load_incluster_config()
        return client.ApiClient()
    except config.ConfigException:
        return config.new_client_from_config()


def item_object(kind: str, item: dict) -> dict:
    """A listed item as the object a watch would carry: List items have no kind or apiVersion."""
    return {"apiVersion": KINDS[kind].api_version, "kind": kind, **item}


class KubernetesObjectSource:
    def __init__(self, api_client: Any, kinds: tuple[str, ...] = tuple(LISTERS)) -> None:
        self.api_client = api_client
        self.kinds = kinds
        self.description = "kubernetes API"
        self.mirror = Mirror()
        self._lock = threading.Lock()  # the mirror and the sink are shared by the kinds' threads
        self._watches: list[Any] = []

    def lister(self, kind: str) -> Callable[..., Any]:
        from kubernetes import client

        api_name, method = LISTERS[kind]
        return getattr(getattr(client, api_name)(self.api_client), method)

    def close(self) -> None:
        for w in list(self._watches):
            w.stop()

    def list_kind(self, kind: str) -> tuple[list[Event], str]:
        """A fresh list of one kind as events against the mirror, and its resourceVersion."""
        resp = self.lister(kind)(_preload_content=False)
        body = json.loads(resp.data)
        objects = [item_object(kind, item) for item in body.get("items", [])]
        with self._lock:
            events = self.mirror.replace(((ref_of(o), o) for o in objects), kinds={kind})
        return events, body.get("metadata", {}).get("resourceVersion", "")

    def apply_watch_event(self, kind: str, event: dict) -> Event | None:
        """One event from kubernetes.watch.Watch.stream(), against the mirror."""
        obj = event["raw_object"]
        if event["type"] == "BOOKMARK":
            return None
        obj = item_object(kind, obj)
        with self._lock:
            if event["type"] == "DELETED":
                return self.mirror.delete(ref_of(obj))
            return self.mirror.put(ref_of(obj), obj)

    def run(self, sink: Sink, stop: threading.Event) -> None:
        ready = {kind: threading.Event() for kind in self.kinds}
        threads = [
            threading.Thread(target=self._run_kind, args=(kind, sink, stop, ready[kind]), daemon=True)
            for kind in self.kinds
        ]
        for t in threads:
            t.start()
        for e in ready.values():
            while not e.wait(0.2):
                if stop.is_set():
                    return
        sink.synced()
        for t in threads:
            t.join()

    def _run_kind(self, kind: str, sink: Sink, stop: threading.Event, ready: threading.Event) -> None:
        from kubernetes import watch
        from kubernetes.client.exceptions import ApiException

        backoff = RETRY_MIN
        while not stop.is_set():
            try:
                events, version = self.list_kind(kind)
                self._deliver(sink, events)
                ready.set()
                w = watch.Watch()
                self._watches.append(w)
                try:
                    for raw in w.stream(self.lister(kind), resource_version=version, timeout_seconds=WATCH_TIMEOUT,
                                        allow_watch_bookmarks=True):  # fmt: skip
                        if stop.is_set():
                            return
                        ev = self.apply_watch_event(kind, raw)
                        if ev is not None:
                            self._deliver(sink, [ev])
                finally:
                    self._watches.remove(w)
                backoff = RETRY_MIN
            except ApiException as e:
                if e.status != 410:
                    log.warning("kubernetes %s: %s; listing again in %.1fs", kind, e.reason, backoff)
                    stop.wait(backoff)
                    backoff = min(backoff * 2, RETRY_MAX)
            except Exception as e:  # the connection broke (urllib3 errors are many): list again
                log.warning("kubernetes %s: %s; listing again in %.1fs", kind, e, backoff)
                stop.wait(backoff)
                backoff = min(backoff * 2, RETRY_MAX)

    def _deliver(self, sink: Sink, events: list[Event]) -> None:
        if events:
            with self._lock:
                sink.events(events)
