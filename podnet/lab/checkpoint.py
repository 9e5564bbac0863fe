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

    def save(self, pods: list[Pod], addresses: dict[str, Any], restarts: dict[str, int]) -> None:
        data = {
            "version": VERSION,
            "controllerPid": os.getpid(),
            "pods": [p.record() for p in sorted(pods, key=lambda p: p.name)],
            "addresses": addresses,
            "restarts": restarts,
        }
        text = json.dumps(data, sort_keys=True, separators=(",", ":")) + "\n"
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
