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


def _peer_text(peer) -> str:
    if peer.ip_block is not None:
        ex = f" Except: {', '.join(peer.ip_block.excepts)}" if peer.ip_block.excepts else ""
        return f"IPBlock: CIDR: {peer.ip_block.cidr}{ex}"
    parts = []
    if peer.namespace_selector is not None:
        parts.append(f"NamespaceSelector: {peer.namespace_selector.text()}")
    if peer.pod_selector is not None:
        parts.append(f"PodSelector: {peer.pod_selector.text()}")
    return " AND ".join(parts)


def _port_text(p) -> str:
    port = "<any>" if p.port is None else str(p.port)
    return f"{port}{f'-{p.end_port}' if p.end_port is not None else ''}/{p.protocol}"


def _rule_lines(direction: str, rules: tuple, isolated: bool) -> list[tuple[str, str]]:
    lower = direction.lower()
    if not isolated:
        return [(f"Not affecting {lower} traffic", "")]
    if not rules:
        return [(f"Allowing {lower} traffic", f"<none> (Selected pods are isolated for {lower} connectivity)")]
    word, anyone = ("From", "source") if direction == "Ingress" else ("To", "destination")
    out = []
    for i, r in enumerate(rules):
        ports = ", ".join(_port_text(p) for p in r.ports) or "<any> (traffic allowed to all ports)"
        peers = "; ".join(_peer_text(p) for p in r.peers) or f"<any> (traffic not restricted by {anyone})"
        out += [(f"Allowing {lower} traffic [{i}]", ""), ("  To Port", ports), (f"  {word}", peers)]
    return out


def describe(obj: dict, pods: list[dict]) -> list[tuple[str, str]]:
    """kubectl describe networkpolicy's lines, and the pods of the lab it selects now."""
    pol = parse(obj)
    lines = [("Name", pol.name), ("Namespace", pol.namespace)]
    lines.append(("Created on", obj["metadata"].get("creationTimestamp", "")))
    everyone = " (Allowing the specific traffic to all pods in this namespace)" if pol.pod_selector.empty else ""
    lines.append(("PodSelector", pol.pod_selector.text() + everyone))
    selected = [p["name"] for p in pods if p.get("namespace", "default") == pol.namespace
                and pol.pod_selector.matches(p["labels"])]  # fmt: skip
    lines.append(("Selects pods", ", ".join(selected) or "<none>"))
    lines += _rule_lines("Ingress", pol.ingress, pol.isolates_ingress)
    lines += _rule_lines("Egress", pol.egress, pol.isolates_egress)
    lines.append(("Policy Types", ", ".join(pol.policy_types)))
    return lines
