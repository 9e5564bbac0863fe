"""The proxy's side of the cluster-objects source interface (cluster/source.py): events in,
tracker updates out. The proxy knows no store; whatever source the agent picks feeds this."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

from cluster.source import DELETED, Event
from proxy.objects import EndpointSlice, ObjectError, Service, _parse_one
from proxy.trackers import Trackers

log = logging.getLogger("podnet.proxy")

PROXY_KINDS = ("Service", "EndpointSlice", "Node", "ServiceCIDR")


class TrackerFeed:
    """A Sink that parses the proxy's kinds and updates its trackers, then asks for a sync."""

    def __init__(
        self, trackers: Trackers, on_change: Callable[[], None], on_progress: Callable[[int], None] | None = None
    ) -> None:
        self.trackers = trackers
        self.on_change = on_change
        self.on_progress = on_progress  # the store moved on (perhaps with none of the proxy's kinds)
        self.invalid: dict[str, str] = {}  # object -> why it was skipped
        self._kinds: dict = {}  # object ref -> (parsed type, key) it was last fed as

    def events(self, events: Sequence[Event]) -> None:
        touched = False
        for ev in events:
            if ev.ref.kind not in PROXY_KINDS:
                continue
            touched = True
            where = str(ev.ref)
            self.invalid.pop(where, None)
            parsed = None
            if ev.type != DELETED and ev.obj is not None:
                try:
                    parsed = _parse_one(ev.obj, where)
                except ObjectError as e:
                    self.invalid[where] = str(e)
                    log.error("skipped %s", e)
            old = self._kinds.pop(ev.ref, None)
            if old is not None and (parsed is None or old != _typed_key(parsed)):
                self.trackers.update(old[1], old[0], None)
            if parsed is not None:
                self._kinds[ev.ref] = _typed_key(parsed)
                self.trackers.update(_typed_key(parsed)[1], type(parsed), parsed)
        if touched and self.trackers.synced:
            self.on_change()

    def synced(self) -> None:
        self.trackers.synced = True
        self.on_change()

    def progress(self, revision: int) -> None:
        self.trackers.revision = max(self.trackers.revision, revision)
        if self.on_progress is not None:
            self.on_progress(revision)


def _typed_key(obj) -> tuple[type, object]:
    return type(obj), (obj.key if isinstance(obj, Service | EndpointSlice) else obj.name)
