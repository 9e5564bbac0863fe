"""Cluster objects from a watched directory (`--objects dir:DIR`): YAML or JSON files holding
Kubernetes objects (single objects, Lists, multi-document YAML), as podnet-proxy's
--objects-dir. Each scan re-reads only files whose size or mtime changed; the whole view is
diffed against what was delivered, so a file edited, renamed or removed yields exactly its
changes.
"""

from __future__ import annotations

import logging
import os
import threading

import yaml

from cluster.source import KINDS, Mirror, ObjectRef, Sink, ref_of

log = logging.getLogger("podnet.cluster")

SUFFIXES = (".yaml", ".yml", ".json")


def objects_in(text: str, where: str) -> list[dict]:
    """The Kubernetes objects of the kinds sources carry, from one file's text."""
    out: list[dict] = []
    try:
        docs = list(yaml.safe_load_all(text))
    except yaml.YAMLError as e:
        log.error("%s: not YAML or JSON (%s); skipped", where, e)
        return out
    for doc in docs:
        items = doc.get("items", []) if isinstance(doc, dict) and doc.get("kind", "").endswith("List") else [doc]
        for item in items:
            if isinstance(item, dict) and item.get("kind") in KINDS and (item.get("metadata") or {}).get("name"):
                out.append(item)
    return out


class DirObjectSource:
    def __init__(self, path: str, interval: float = 0.2) -> None:
        self.path = path
        self.interval = interval
        self.description = f"dir:{path}"
        self.mirror = Mirror()
        self._files: dict[str, tuple[tuple[int, int], list[dict]]] = {}

    def close(self) -> None:
        pass  # run() wakes at least every `interval`

    def scan(self) -> list[tuple[ObjectRef, dict]]:
        seen: dict[str, tuple[int, int]] = {}
        for root, _dirs, names in os.walk(self.path):
            for name in names:
                if name.endswith(SUFFIXES) and not name.startswith("."):
                    full = os.path.join(root, name)
                    try:
                        st = os.stat(full)
                    except FileNotFoundError:
                        continue
                    seen[full] = (st.st_mtime_ns, st.st_size)
        for gone in self._files.keys() - seen.keys():
            del self._files[gone]
        for path, stamp in seen.items():
            if path in self._files and self._files[path][0] == stamp:
                continue
            try:
                with open(path, encoding="utf-8") as f:
                    text = f.read()
            except (OSError, UnicodeDecodeError) as e:
                log.error("%s: unreadable (%s); skipped", path, e)
                text = ""
            self._files[path] = (stamp, objects_in(text, os.path.relpath(path, self.path)))
        return [(ref_of(obj), obj) for path in sorted(self._files) for obj in self._files[path][1]]

    def run(self, sink: Sink, stop: threading.Event) -> None:
        sink.events(self.mirror.replace(self.scan()))
        sink.synced()
        while not stop.wait(self.interval):
            events = self.mirror.replace(self.scan())
            if events:
                sink.events(events)
