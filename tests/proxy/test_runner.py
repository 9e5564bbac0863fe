"""The coalescing runner: bursts become one run, a minimum interval holds, failures retry."""

from __future__ import annotations

import threading
import time

from proxy.runner import Runner


def test_burst_is_one_run_and_min_interval_holds():
    runs: list[float] = []
    done = threading.Event()

    def fn():
        runs.append(time.monotonic())
        done.set()

    r = Runner(fn, min_interval=0.3, max_interval=60)
    r.start()
    try:
        done.wait(2)  # the first run happens at once
        done.clear()
        for _ in range(10):
            r.request()
            time.sleep(0.01)
        done.wait(2)
        time.sleep(0.5)
    finally:
        r.stop()
    assert len(runs) == 2
    assert runs[1] - runs[0] >= 0.29


def test_failure_is_retried_with_backoff():
    calls: list[float] = []

    def fn():
        calls.append(time.monotonic())
        if len(calls) < 3:
            raise RuntimeError("kernel said no")

    r = Runner(fn, min_interval=0.05, max_interval=60, retry_interval=0.1)
    r.start()
    try:
        deadline = time.monotonic() + 3
        while len(calls) < 3 and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        r.stop()
    assert len(calls) == 3 and r.failures == 0
    assert calls[2] - calls[1] >= 1.5 * (calls[1] - calls[0])  # the back-off grows
