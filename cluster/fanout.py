"""One objects source, several consumers: the agent's service proxy and its policy engine
read the same watch (one list, one connection) rather than one each."""

from __future__ import annotations

import threading
from collections.abc import Sequence

from cluster.source import Event, ObjectSource, Sink


class FanOut:
    """A sink that tells every sink it holds, in order."""

    def __init__(self, *sinks: Sink) -> None:
        self.sinks = sinks

    def events(self, events: Sequence[Event]) -> None:
        for s in self.sinks:
            s.events(events)

    def synced(self) -> None:
        for s in self.sinks:
            s.synced()

    def progress(self, revision: int) -> None:
        for s in self.sinks:
            s.progress(revision)


class SharedSource:
    """A source whose run() also feeds `extra` sinks besides the one it is given."""

    def __init__(self, inner: ObjectSource, *extra: Sink) -> None:
        self.inner = inner
        self.extra = extra
        self.description = inner.description

    def run(self, sink: Sink, stop: threading.Event) -> None:
        self.inner.run(FanOut(sink, *self.extra), stop)

    def close(self) -> None:
        self.inner.close()
