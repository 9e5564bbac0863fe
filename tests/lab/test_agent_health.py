"""The controller's non-blocking /healthz questions (podnet/lab/agent_health.py), against the
agent's own health server on loopback."""

from __future__ import annotations

import select
import socket
import time

from podnet.agent.housekeeping import Housekeeping
from podnet.lab.agent_health import NO_ANSWER, Health, Question, parse
from proxy.metrics import Metrics


def answer(q: Question, timeout: float = 5.0) -> Health:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = q.step(time.monotonic())
        if got is not None:
            return got
        if q.answer is None:
            select.select([q], [], [], 0.05)
    raise AssertionError("no answer")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_an_agent_answers_its_status_and_revision_and_a_silent_one_counts_as_none():
    parts = {"subnet": True, "routes": True, "proxy": True}
    house = Housekeeping(lambda: dict(parts), dict, Metrics().text, lambda: 1234)
    port = free_port()
    house.serve(f"127.0.0.1:{port}", "")
    try:
        assert answer(Question("127.0.0.1", port)) == Health(200, 1234)
        parts["proxy"] = False
        assert answer(Question("127.0.0.1", port)) == Health(503, 1234)
    finally:
        house.close()
    assert answer(Question("127.0.0.1", port)) == NO_ANSWER  # nobody listens there now


def test_replies_that_are_not_an_agents_give_no_revision():
    assert parse(b'HTTP/1.0 200 OK\r\n\r\n{"syncedRevision": true}') == Health(200, 0)
    assert parse(b"HTTP/1.0 200 OK\r\n\r\n[]") == Health(200, 0)
    assert parse(b"garbage") == NO_ANSWER
