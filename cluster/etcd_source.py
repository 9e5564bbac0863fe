"""Cluster objects from etcd: Kubernetes objects as JSON under PREFIX/registry/<resource>/...

Layout, as the API server's own (but with the plural resource names for every kind):
  PREFIX/registry/<resource>/<namespace>/<name>   namespaced kinds (services, endpointslices ...)
  PREFIX/registry/<resource>/<name>               cluster-scoped kinds (nodes, servicecidrs)

One range read, then a watch from the revision after it. A watch that goes idle is re-opened
from the last revision seen; a compacted start revision or a lost connection leads to a
fresh list, diffed against what was delivered (cluster.source.Mirror), so nothing is missed
or delivered twice.
"""

from __future__ import annotations

import json
import logging
import threading

from cluster.etcd import EtcdClient, EtcdError, KeyValue, Watch
from cluster.source import BY_RESOURCE, KINDS, Event, Mirror, ObjectRef, Sink

log = logging.getLogger("podnet.cluster")

RETRY_MIN, RETRY_MAX = 0.2, 5.0


def registry_root(prefix: str) -> str:
    return prefix.rstrip("/") + "/registry/"


def key_for(prefix: str, ref: ObjectRef) -> str:
    kind = KINDS[ref.kind]
    where = f"{ref.namespace}/{ref.name}" if kind.namespaced else ref.name
    return f"{registry_root(prefix)}{kind.resource}/{where}"


def ref_for_key(prefix: str, key: str) -> ObjectRef | None:
    """The object a key holds, or None for keys outside the layout."""
    root = registry_root(prefix)
    if not key.startswith(root):
        return None
    parts = key[len(root) :].split("/")
    kind = BY_RESOURCE.get(parts[0])
    if kind is None or len(parts) != (3 if kind.namespaced else 2) or not all(parts):
        return None
    return ObjectRef(kind.kind, parts[1] if kind.namespaced else "", parts[-1])


def decode(prefix: str, kv: KeyValue) -> tuple[ObjectRef, dict] | None:
    ref = ref_for_key(prefix, kv.key)
    if ref is None:
        return None
    try:
        obj = json.loads(kv.value)
    except ValueError:
        log.error("%s: not JSON; ignored", kv.key)
        return None
    if not isinstance(obj, dict) or obj.get("kind") != ref.kind:
        log.error("%s: not a %s object; ignored", kv.key, ref.kind)
        return None
    return ref, obj


class EtcdObjectSource:
    def __init__(self, client: EtcdClient, prefix: str) -> None:
        self.client = client
        self.prefix = prefix
        self.description = f"etcd://{client.endpoint}{registry_root(prefix)}"
        self.mirror = Mirror()
        self.revision = 0  # the store revision the mirror reflects
        self.relists = 0
        self._watch: Watch | None = None
        self._lock = threading.Lock()

    def close(self) -> None:
        with self._lock:
            if self._watch is not None:
                self._watch.close()

    def list_once(self) -> list[Event]:
        """A fresh list, as events against the mirror; the watch continues after it."""
        kvs, self.revision = self.client.list_prefix(registry_root(self.prefix))
        self.relists += 1
        return self.mirror.replace(d for kv in kvs if (d := decode(self.prefix, kv)) is not None)

    def run(self, sink: Sink, stop: threading.Event) -> None:
        synced = False
        backoff = RETRY_MIN
        while not stop.is_set():
            try:
                sink.events(self.list_once())
                if not synced:
                    sink.synced()
                    synced = True
                sink.progress(self.revision)
                backoff = RETRY_MIN
                self._follow(sink, stop)
            except EtcdError as e:
                if stop.is_set():
                    return
                log.warning("objects from %s: %s; listing again in %.1fs", self.description, e, backoff)
                stop.wait(backoff)
                backoff = min(backoff * 2, RETRY_MAX)

    def _follow(self, sink: Sink, stop: threading.Event) -> None:
        """Watch from the revision after the mirror's; return when a fresh list is needed."""
        while not stop.is_set():
            watch = self.client.watch_prefix(registry_root(self.prefix), self.revision + 1)
            with self._lock:
                self._watch = watch
            if stop.is_set():
                watch.close()
                return
            try:
                for batch in watch:
                    if batch.compacted or batch.canceled:
                        log.info("watch of %s compacted at %d; listing again", self.description, batch.compacted)
                        return
                    out = []
                    for ev in batch.events:
                        self.revision = max(self.revision, ev.kv.mod_revision)
                        out += self._apply(ev.kind, ev.kv)
                    if out:
                        sink.events(out)
                    sink.progress(self.revision)
            except TimeoutError:
                continue  # idle: re-open from the last revision (no list needed)
            finally:
                watch.close()
                with self._lock:
                    self._watch = None

    def _apply(self, kind: str, kv: KeyValue) -> list[Event]:
        ref = ref_for_key(self.prefix, kv.key)
        if ref is None:
            return []
        if kind == "DELETE":
            ev = self.mirror.delete(ref)
        else:
            decoded = decode(self.prefix, kv)
            # A value that no longer decodes takes the object away (as a deletion would).
            ev = self.mirror.put(ref, decoded[1]) if decoded else self.mirror.delete(ref)
        return [ev] if ev else []
