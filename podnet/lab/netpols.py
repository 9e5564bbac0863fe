"""The lab's NetworkPolicies, kept in desired.json beside the topology (`networkPolicies`: the
objects as the API server would store them), and its namespaces' labels (`namespaceLabels`,
from Namespace manifests: what namespaceSelectors match). They are no part of what the controller makes
(no pods, no addresses): it only writes them into etcd (pod_objects.py), where each node's
agent reads and enforces them. Pure functions of the desired-state dict."""

from __future__ import annotations

import calendar
import time

from policy.spec import parse

KEY = "networkPolicies"
LABELS_KEY = "namespaceLabels"  # a namespace's own labels, from its manifest (namespaceSelector)


class Refused(ValueError):
    """An apply or delete kubectl would answer with this error."""


def _ns(obj: dict) -> str:
    return obj["metadata"]["namespace"]


def _find(items: list[dict], namespace: str, name: str) -> int | None:
    return next((i for i, o in enumerate(items) if _ns(o) == namespace and o["metadata"]["name"] == name), None)


def put(data: dict, obj: dict, namespaces: list[str], create_only: bool) -> str:
    """Store `obj` (already validated); "created", "configured" or "unchanged"."""
    items = data.setdefault(KEY, [])
    ns, name = _ns(obj), obj["metadata"]["name"]
    if ns not in namespaces:
        raise Refused(f'Error from server (NotFound): namespaces "{ns}" not found')
    i = _find(items, ns, name)
    if i is not None and create_only:
        raise Refused(f'Error from server (AlreadyExists): networkpolicies.networking.k8s.io "{name}" already exists')
    if i is None:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        items.append({**obj, "metadata": {**obj["metadata"], "creationTimestamp": stamp}})
        return "created"
    old = items[i]
    if {**old, "metadata": {k: v for k, v in old["metadata"].items() if k != "creationTimestamp"}} == obj:
        return "unchanged"
    items[i] = {**obj, "metadata": {**obj["metadata"], "creationTimestamp": old["metadata"].get("creationTimestamp")}}
    return "configured"


def drop(data: dict, namespace: str, name: str) -> bool:
    items = data.get(KEY, [])
    i = _find(items, namespace, name)
    if i is None:
        return False
    del items[i]
    return True


def drop_namespace(data: dict, namespace: str) -> None:
    """A namespace deleted takes its policies and its labels with it."""
    data[KEY] = [o for o in data.get(KEY, []) if _ns(o) != namespace]
    data.get(LABELS_KEY, {}).pop(namespace, None)


def set_namespace_labels(data: dict, namespace: str, labels: dict[str, str]) -> bool:
    """A Namespace manifest's labels replace what it had (as apply does); True when changed."""
    table = data.setdefault(LABELS_KEY, {})
    old = table.get(namespace, {})
    if labels:
        table[namespace] = dict(labels)
    else:
        table.pop(namespace, None)
    return old != labels


def namespace_labels(data: dict) -> dict[str, dict[str, str]]:
    return data.get(LABELS_KEY, {})


def listed(data: dict, namespace: str | None, name: str | None) -> list[dict]:
    """namespace None: every namespace."""
    return [o for o in data.get(KEY, []) if (namespace is None or _ns(o) == namespace)
            and (name is None or o["metadata"]["name"] == name)]  # fmt: skip


def created(obj: dict) -> float:
    stamp = obj["metadata"].get("creationTimestamp")
    return calendar.timegm(time.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ")) if stamp else time.time()


def pod_selector_text(obj: dict) -> str:
    """kubectl's POD-SELECTOR column."""
    return parse(obj).pod_selector.text()
