"""The coalescing sync runner (kube-proxy's pkg/util/async/bounded_frequency_runner.go, in spirit).

Events only call `request()`. The runner's thread then runs the sync function:
- never sooner than `min_interval` after the previous run (a burst of requests is one sync);
- at least every `max_interval` even when nothing was requested (the periodic sync);
- after a failure, again after a back-off that doubles up to `max_interval`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

log = logging.getLogger("podnet.proxy")


class Runner:
    def __init__(
        self,
        fn: Callable[[], None],
        *,
        min_interval: float,
        max_interval: float,
        retry_interval: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.fn = fn
        self.min_interval = min_interval
        self.max_interval = max_interval
        self.retry_interval = retry_interval
        self.clock = clock
        self._cond = threading.Condition()
        self._requested = False
        self._stopped = False
        self._last_run = float("-inf")
        self._retry_at: float | None = None
        self._backoff = retry_interval
        self.failures = 0  # consecutive
        self._thread: threading.Thread | None = None

    def request(self) -> None:
        with self._cond:
            self._requested = True
            self._cond.notify()

    def start(self) -> None:
        self._thread = threading.Thread(target=self.loop, name="podnet-proxy-sync", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        with self._cond:
            self._stopped = True
            self._cond.notify()
        if self._thread is not None:
            self._thread.join()

    def next_run(self) -> float:
        """When the next run is due, given what is pending (inf when nothing is)."""
        due = self._last_run + self.max_interval
        if self._requested:
            due = min(due, self._last_run + self.min_interval)
        if self._retry_at is not None:
            due = min(due, max(self._retry_at, self._last_run + self.min_interval))
        return due

    def loop(self) -> None:
        while True:
            with self._cond:
                while not self._stopped:
                    wait = self.next_run() - self.clock()
                    if wait <= 0:
                        break
                    self._cond.wait(timeout=min(wait, 3600))
                if self._stopped:
                    return
                self._requested = False
                self._retry_at = None
                self._last_run = self.clock()
            self._run_once()

    def _run_once(self) -> None:
        try:
            self.fn()
        except Exception as e:  # a failed sync must never kill the loop: it is retried
            with self._cond:
                self.failures += 1
                self._retry_at = self.clock() + self._backoff
                log.error("sync failed (retrying in %.1fs): %s", self._backoff, e)
                self._backoff = min(self._backoff * 2, max(self.max_interval, self.retry_interval))
        else:
            with self._cond:
                self.failures = 0
                self._backoff = self.retry_interval
