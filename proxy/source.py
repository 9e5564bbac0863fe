"""The objects directory (`--objects-dir`): YAML/JSON files holding Services, EndpointSlices,
Nodes and ServiceCIDRs. A scan re-reads only files whose size or mtime changed, and feeds the
difference with the previous scan into the trackers; the first scan is the first complete view.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from typing import Any, Protocol

from proxy.objects import EndpointSlice, KubeObject, ObjectError, Service, load_text

log = logging.getLogger("podnet.proxy")

SUFFIXES = (".yaml", ".yml", ".json")


class Sink(Protocol):
    """What a scan feeds: one family's Trackers, or the metaproxier's fan-out to every family."""

    synced: bool

    def update(self, key: Any, kind: type, current: Any) -> None: ...


def object_key(obj: KubeObject):
    if isinstance(obj, Service | EndpointSlice):
        return obj.key
    return obj.name


@dataclass
class _File:
    stamp: tuple[int, int]
    objects: tuple[KubeObject, ...]


@dataclass
class DirectorySource:
    path: str
    files: dict[str, _File] = field(default_factory=dict)
    current: dict[tuple[type, object], KubeObject] = field(default_factory=dict)
    errors: list[ObjectError] = field(default_factory=list)  # of the last scan's re-read files

    def scan(self, trackers: Sink) -> bool:
        """Read what changed and feed the trackers; True when any file changed."""
        seen = self._list()
        changed = False
        self.errors = []
        for gone in set(self.files) - set(seen):
            del self.files[gone]
            changed = True
        for path, stamp in seen.items():
            known = self.files.get(path)
            if known is not None and known.stamp == stamp:
                continue
            self.files[path] = _File(stamp, self._read(path))
            changed = True
        if changed or not trackers.synced:
            self._feed(trackers)
        trackers.synced = True
        return changed

    def _list(self) -> dict[str, tuple[int, int]]:
        out = {}
        for root, _dirs, names in os.walk(self.path):
            for name in names:
                if name.endswith(SUFFIXES) and not name.startswith("."):
                    full = os.path.join(root, name)
                    try:
                        st = os.stat(full)
                    except FileNotFoundError:
                        continue
                    out[full] = (st.st_mtime_ns, st.st_size)
        return out

    def _read(self, path: str) -> tuple[KubeObject, ...]:
        rel = os.path.relpath(path, self.path)
        try:
            with open(path, encoding="utf-8") as f:
                text = f.read()
        except (OSError, UnicodeDecodeError) as e:
            err = ObjectError(rel, "", f"unreadable: {e}")
            self.errors.append(err)
            log.error("skipped %s", err)
            return ()
        loaded = load_text(text, rel)
        for err in loaded.errors:
            self.errors.append(err)
            log.error("skipped %s", err)
        return loaded.objects

    def _feed(self, trackers: Sink) -> None:
        new: dict[tuple[type, object], KubeObject] = {}
        for path in sorted(self.files):
            for obj in self.files[path].objects:
                new[(type(obj), object_key(obj))] = obj
        for (kind, key), obj in new.items():
            if self.current.get((kind, key)) != obj:
                trackers.update(key, kind, obj)
        for kind, key in self.current.keys() - new.keys():
            trackers.update(key, kind, None)
        self.current = new
