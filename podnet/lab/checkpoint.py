"""What a controller that takes over needs, in a file of its own (checkpoint.json).

status.json is for people and commands to read; rebuilding from it tied recovery to what
an observer is shown, and it is written at a leisurely pace. The checkpoint keeps each
pod's identity, phase, address and process, the Services' addresses and the restart
counts, and is written before any pod namespace is made: a controller killed at any moment
(even with -9) leaves a record of every namespace it made, so its successor can give each
one a CNI DEL instead of deleting unknown namespaces and leaking their addresses.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Any

from podnet.lab.pod import Pod

VERSION = 1


@dataclass
class Saved:
    pods: list[Pod] = field(default_factory=list)
    addresses: dict[str, Any] = field(default_factory=dict)
    restarts: dict[str, int] = field(default_factory=dict)
    controller_pid: int | None = None


class Checkpoint:
    def __init__(self, path: str):
        self.path = path
        self.last_text = ""
        # pod -> (what of it changes, its record as JSON): a lab coming up saves a checkpoint
        # before each batch of namespaces, and most of its pods have not changed since the last
        self._records: dict[str, tuple[tuple, str]] = {}

    def _record(self, p: Pod) -> str:
        mark = (p.phase, p.ip, p.pid, p.pid_start, p.version, p.template, p.node, p.restarts)
        known = self._records.get(p.name)
        if known is None or known[0] != mark:
            known = (mark, _dumps(p.record()))
            self._records[p.name] = known
        return known[1]

    def save(self, pods: list[Pod], addresses: dict[str, Any], restarts: dict[str, int]) -> None:
        by_name = sorted(pods, key=lambda p: p.name)
        self._records = {p.name: self._records[p.name] for p in by_name if p.name in self._records}
        # the keys in sorted order, as json.dumps(sort_keys=True) of the whole would write them
        text = (
            f'{{"addresses":{_dumps(addresses)},"controllerPid":{os.getpid()},'
            f'"pods":[{",".join(self._record(p) for p in by_name)}],'
            f'"restarts":{_dumps(restarts)},"version":{VERSION}}}\n'
        )
        if text == self.last_text:
            return
        tmp = f"{self.path}.tmp"
        with open(tmp, "w") as f:
            f.write(text)
        os.replace(tmp, self.path)  # a reader sees the old checkpoint or the new one, never half
        self.last_text = text

    def load(self) -> Saved | None:
        try:
            with open(self.path) as f:
                data = json.load(f)
        except FileNotFoundError:
            return None
        if data.get("version") != VERSION:
            raise ValueError(f"{self.path}: checkpoint version {data.get('version')!r}, expected {VERSION}")
        return Saved(
            pods=[Pod.from_record(r) for r in data["pods"]],
            addresses=data.get("addresses", {}),
            restarts=data.get("restarts", {}),
            controller_pid=data.get("controllerPid"),
        )


def _dumps(data: Any) -> str:
    return json.dumps(data, sort_keys=True, separators=(",", ":"))
