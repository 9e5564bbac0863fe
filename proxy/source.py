"""The objects directory (`--objects-dir`): YAML/JSON files holding Services, EndpointSlices,
Nodes and ServiceCIDRs. A scan re-reads only files whose size or mtime changed, and feeds the
difference with the previous scan into the trackers; the first scan is the first complete view.

The directory is outside input: files are read through `safeload` (regular files only, never
blocking, bounded in size, depth and aliases). A file that cannot be read or parsed any more
keeps the objects it last gave (the last good state, logged), one bad object in a file is
left out alone, and when two files hold the same object the first file in path order wins,
with a warning naming both.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from typing import Any, Protocol

import safeload
from cluster.dir_source import list_files
from proxy.objects import EndpointSlice, KubeObject, ObjectError, Service, load_text


class Sink(Protocol):
    """What a scan feeds: one family's Trackers, or the daemon's FanOut over both families."""

    synced: bool

    def update(self, key: Any, kind: type, current: Any) -> None: ...


log = logging.getLogger("podnet.proxy")


def object_key(obj: KubeObject):
    if isinstance(obj, Service | EndpointSlice):
        return obj.key
    return obj.name


@dataclass
class _File:
    stamp: tuple[int, int]
    objects: tuple[KubeObject, ...]


def _printable(path: str) -> str:
    """A file name as it may appear in a log line (a name can hold a newline too)."""
    return path if path.isprintable() else repr(path)


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
            objects = self._read(path)
            if objects is None:  # unreadable now: keep what it held when it last was readable
                objects = known.objects if known is not None else ()
            self.files[path] = _File(stamp, objects)
            changed = True
        if changed or not trackers.synced:
            self._feed(trackers)
        trackers.synced = True
        return changed

    def _list(self) -> dict[str, tuple[int, int]]:
        return list_files(self.path)

    def _read(self, path: str) -> tuple[KubeObject, ...] | None:
        """The file's usable objects; None when the file as a whole is refused."""
        rel = _printable(os.path.relpath(path, self.path))
        try:
            text = safeload.read_text(path, where=rel)
        except safeload.LoadError as e:
            err = ObjectError(rel, "", f"unreadable: {e.problem}")
            self.errors.append(err)
            log.error("skipped %s (keeping what it held before)", err)
            return None
        loaded = load_text(text, rel)
        for err in loaded.errors:
            self.errors.append(err)
            log.error("skipped %s", err)
        if not loaded.parsed:
            return None  # the whole file is refused: keep its last good objects
        return loaded.objects

    def _feed(self, trackers: Sink) -> None:
        new: dict[tuple[type, object], KubeObject] = {}
        origin: dict[tuple[type, object], str] = {}
        for path in sorted(self.files):
            for obj in self.files[path].objects:
                ident = (type(obj), object_key(obj))
                if ident in new:
                    # the API server would hold one; take the first file in path order, every scan
                    log.warning(
                        "%s %s is in both %s and %s: using the one in %s",
                        type(obj).__name__,
                        "/".join(ident[1]) if isinstance(ident[1], tuple) else ident[1],
                        _printable(os.path.relpath(origin[ident], self.path)),
                        _printable(os.path.relpath(path, self.path)),
                        _printable(os.path.relpath(origin[ident], self.path)),
                    )
                    continue
                new[ident] = obj
                origin[ident] = path
        for (kind, key), obj in new.items():
            if self.current.get((kind, key)) != obj:
                trackers.update(key, kind, obj)
        for kind, key in self.current.keys() - new.keys():
            trackers.update(key, kind, None)
        self.current = new
