"""The lab's own objects in its etcd, kept equal to what the controller wants.

A shadow copy of what was written makes each write only the difference (the agents' watches
then see few revisions and resync seldom), in transactions etcd accepts: it refuses one of more
than --max-txn-ops (128) operations, and a lab of hundreds of pods or Services needs more.
While etcd does not answer (restarting), the agents keep their rules and the write is tried
again at the next tick.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from cluster.etcd import EtcdClient, EtcdError
from podnet.lab.pod import log

TXN_OPS = 100

Objects = dict[str, str]  # etcd key -> the object's JSON


class EtcdShadow:
    def __init__(self, client: EtcdClient, what: str):
        self.client, self.what = client, what
        self.written: Objects | None = None  # None until read back from etcd
        self.pending = True
        self.last_write = 0.0
        self.failing = False
        # the store revision at which etcd held all of `written` (0: not known yet): whoever
        # reads the store at this revision or later sees every object written so far
        self.revision = 0

    def note(self, changed: bool) -> None:
        self.pending = self.pending or changed

    def due(self, every: float) -> bool:
        """Whether a write is pending and the last one is `every` seconds old (then it starts now)."""
        now = time.monotonic()
        if not self.pending or now - self.last_write < every:
            return False
        self.last_write = now
        return True

    def write(self, ours: Callable[[], Objects], wanted: Callable[[], Objects]) -> bool:
        """Make etcd hold `wanted()`; `ours()` reads back what an earlier controller of this lab
        wrote (a controller taking over starts there), and sets `revision` to the newest
        mod_revision among them. False while etcd does not answer."""
        try:
            if self.written is None:
                self.written = ours()  # (and self.revision: the newest of them, as read back)
            want = wanted()
            puts = {k: v for k, v in want.items() if self.written.get(k) != v}
            self.revision = self._put(puts, sorted(self.written.keys() - want.keys())) or self.revision
            self.written = want
            self.pending = False
        except EtcdError as e:
            if not self.failing:
                log(f"cannot write {self.what} to etcd yet: {e}")
            self.failing = True
            return False
        if self.failing:
            log(f"etcd answers again: {self.what} written")
            self.failing = False
        return True

    def _put(self, puts: Objects, gone: list[str]) -> int:
        """Write in transactions etcd accepts; the revision of the last one (0: nothing to write)."""
        ops: list[tuple[str, str | None]] = [*puts.items(), *((k, None) for k in gone)]
        revision = 0
        for i in range(0, len(ops), TXN_OPS):
            batch = ops[i : i + TXN_OPS]
            puts_now, deletes = {k: v for k, v in batch if v is not None}, [k for k, v in batch if v is None]
            revision = self.client.put_all(puts_now, deletes)
        return revision
