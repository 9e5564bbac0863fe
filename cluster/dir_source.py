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

import safeload
from cluster.source import KINDS, Mirror, ObjectRef, Sink, ref_of

log = logging.getLogger("podnet.cluster")

SUFFIXES = (".yaml", ".yml", ".json")


def list_files(path: str) -> dict[str, tuple[int, int]]:
    """Every object file under `path` (hidden ones left out), with its (mtime, size) stamp."""
    out = {}
    for root, _dirs, names in os.walk(path):
        for name in names:
            if name.endswith(SUFFIXES) and not name.startswith("."):
                full = os.path.join(root, name)
                try:
                    st = os.stat(full)
                except FileNotFoundError:
                    continue
                out[full] = (st.st_mtime_ns, st.st_size)
    return out


def objects_in(text: str, where: str) -> list[dict]:
    """The Kubernetes objects of the kinds sources carry, from one file's text (parsed with
    safeload's limits on size, depth and aliases: a hostile file is refused, never a hang)."""
    out: list[dict] = []
    docs = safeload.load_documents(text, where)
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
        seen = list_files(self.path)
        for gone in self._files.keys() - seen.keys():
            del self._files[gone]
        for path, stamp in seen.items():
            known = self._files.get(path)
            if known is not None and known[0] == stamp:
                continue
            where = os.path.relpath(path, self.path)
            try:  # regular files only, non-blocking, bounded: a FIFO or a bomb never hangs us
                objects = objects_in(safeload.read_text(path, where=where), where)
            except safeload.LoadError as e:
                log.error("%s: %s; keeping what it last held", where, e)
                objects = known[1] if known is not None else []
            self._files[path] = (stamp, objects)
        return [(ref_of(obj), obj) for path in sorted(self._files) for obj in self._files[path][1]]

    def run(self, sink: Sink, stop: threading.Event) -> None:
        sink.events(self.mirror.replace(self.scan()))
        sink.synced()
        while not stop.wait(self.interval):
            events = self.mirror.replace(self.scan())
            if events:
                sink.events(events)
