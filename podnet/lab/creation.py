"""When each Service, Deployment and Namespace was created, for kubectl's AGE column: stamped in
the lab's desired state by the command that created it (apply, create, expose) and dropped with
the object. An object of the topology file (`lab up`) has no stamp: it is as old as the lab.
"""

from __future__ import annotations

import time

KEY = "created"


def _ref(kind: str, namespace: str, name: str) -> str:
    return f"{kind}/{namespace}/{name}"


def stamp(data: dict, kind: str, namespace: str, name: str) -> None:
    data.setdefault(KEY, {})[_ref(kind, namespace, name)] = time.time()


def forget(data: dict, kind: str, namespace: str, name: str) -> None:
    data.get(KEY, {}).pop(_ref(kind, namespace, name), None)


def forget_namespace(data: dict, namespace: str) -> None:
    """A namespace's deletion takes what it holds with it."""
    stamps = data.get(KEY, {})
    for ref in [r for r in stamps if r.split("/")[1] == namespace]:
        del stamps[ref]


def created(data: dict, kind: str, namespace: str, name: str, lab_born: float) -> float:
    return data.get(KEY, {}).get(_ref(kind, namespace, name), lab_born)
