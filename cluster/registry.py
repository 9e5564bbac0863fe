"""Kubernetes objects kept in etcd for `podnet cluster apply|get|delete` (as calicoctl keeps
Calico's datastore): every object validated first, then all written in one transaction, so
a bad object leaves nothing half-written."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable

from cluster.etcd import EtcdClient
from cluster.etcd_source import decode, key_for, registry_root
from cluster.source import BY_RESOURCE, KINDS, ObjectRef, ref_of

Validator = Callable[[dict, str], None]  # raises ValueError naming the field


class InvalidObject(ValueError):
    pass


def kind_named(text: str) -> str:
    """A kind as a person types it (service, svc, endpointslices, Node ...) -> its Kind name."""
    low = text.lower()
    short = {
        "svc": "Service",
        "ep": "EndpointSlice",
        "eps": "EndpointSlice",
        "no": "Node",
        "netpol": "NetworkPolicy",
        "po": "Pod",
        "ns": "Namespace",
    }
    if low in short:
        return short[low]
    for kind in KINDS.values():
        if low in (kind.kind.lower(), kind.resource, kind.resource.rstrip("s")):
            return kind.kind
    if low in BY_RESOURCE:
        return BY_RESOURCE[low].kind
    raise InvalidObject(f"kind {text!r}: not one of {', '.join(KINDS)}")


def check(objects: Iterable[tuple[dict, str]], validate: Validator | None) -> list[tuple[ObjectRef, dict]]:
    """Every object checked (kind, apiVersion, name, and `validate`) before anything is written."""
    out: list[tuple[ObjectRef, dict]] = []
    for obj, where in objects:
        if not isinstance(obj, dict):
            raise InvalidObject(f"{where}: not a Kubernetes object")
        kind = KINDS.get(obj.get("kind", ""))
        if kind is None:
            raise InvalidObject(f"{where}: kind: {obj.get('kind')!r} is not one of {', '.join(KINDS)}")
        if obj.get("apiVersion") != kind.api_version:
            raise InvalidObject(f"{where}: apiVersion: {obj.get('apiVersion')!r} (a {kind.kind} is {kind.api_version})")
        meta = obj.get("metadata")
        if not isinstance(meta, dict) or not isinstance(meta.get("name"), str) or not meta["name"]:
            raise InvalidObject(f"{where}: metadata.name: missing")
        if "/" in meta["name"] or "/" in str(meta.get("namespace", "")):
            raise InvalidObject(f"{where}: metadata.name: may not hold '/'")
        if validate is not None:
            try:
                validate(obj, where)
            except ValueError as e:
                raise InvalidObject(str(e)) from None
        obj = dict(obj)
        if kind.namespaced:  # stored as the API server stores it: namespace filled in
            obj["metadata"] = {**meta, "namespace": meta.get("namespace") or "default"}
        out.append((ref_of(obj), obj))
    return out


def apply(client: EtcdClient, prefix: str, objects: list[tuple[ObjectRef, dict]]) -> int:
    """Write every (already checked) object in one transaction; the revision it made."""
    return client.put_all({key_for(prefix, ref): json.dumps(obj, sort_keys=True) for ref, obj in objects})


def get(client: EtcdClient, prefix: str, kind: str | None = None, namespace: str | None = None,
        name: str | None = None) -> list[tuple[ObjectRef, dict]]:  # fmt: skip
    where = registry_root(prefix) + (KINDS[kind].resource + "/" if kind else "")
    out = []
    for kv in client.get_prefix(where):
        d = decode(prefix, kv)
        if d is None:
            continue
        ref, obj = d
        if (namespace is None or not ref.namespace or ref.namespace == namespace) and (
            name is None or ref.name == name
        ):
            out.append(d)
    return sorted(out, key=lambda d: d[0])


def delete(client: EtcdClient, prefix: str, ref: ObjectRef) -> bool:
    return client.delete(key_for(prefix, ref))
