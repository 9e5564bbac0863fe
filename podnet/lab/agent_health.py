"""The agents' /healthz, asked without ever blocking the controller's tick.

The controller asks each node's agent how far its rules are programmed (`syncedRevision`) many
times while pods come up, and a busy agent (a sync holds its interpreter) answers late: a
blocking request would stall every pod's next step behind it. So each question is a
non-blocking socket whose reply the controller's poll waits on with everything else, read
when it has arrived, and given up after TIMEOUT.
"""

from __future__ import annotations

import contextlib
import errno
import json
import socket
import time
from dataclasses import dataclass

TIMEOUT = 2.0  # an agent that has not answered by then counts as not answering
REQUEST = b"GET /healthz HTTP/1.0\r\nHost: agent\r\n\r\n"  # 1.0: the agent closes after its answer
MAX_REPLY = 65536


@dataclass(frozen=True)
class Health:
    status: int  # the HTTP status (200: subnet, routes and Service rules in sync); 0: no answer
    synced_revision: int  # the etcd revision every change up to which is programmed (0: unknown)


NO_ANSWER = Health(0, 0)


def parse(reply: bytes) -> Health:
    """A /healthz reply: its status line and the JSON body's syncedRevision."""
    head, _, body = reply.partition(b"\r\n\r\n")
    try:
        status = int(head.split(b" ", 2)[1])
    except (IndexError, ValueError):
        return NO_ANSWER
    try:
        revision = json.loads(body).get("syncedRevision", 0)
    except (ValueError, AttributeError):
        revision = 0
    return Health(status, revision if isinstance(revision, int) and not isinstance(revision, bool) else 0)


class Question:
    """One /healthz request in flight to one agent."""

    def __init__(self, host: str, port: int, now: float | None = None) -> None:
        self.started = time.monotonic() if now is None else now
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM | socket.SOCK_NONBLOCK)
        self.sent = False
        self.reply = b""
        self.answer: Health | None = None
        code = self.sock.connect_ex((host, port))
        if code not in (0, errno.EINPROGRESS):
            self._done(NO_ANSWER)

    def fileno(self) -> int:
        return self.sock.fileno()

    def step(self, now: float) -> Health | None:
        """Move on as far as possible without blocking; the answer once there is one."""
        if self.answer is not None:
            return self.answer
        if now - self.started > TIMEOUT:
            return self._done(NO_ANSWER)
        try:
            if not self.sent:
                self.sock.send(REQUEST)  # a few bytes: a connected socket takes them whole
                self.sent = True
            while True:
                chunk = self.sock.recv(MAX_REPLY)
                if not chunk:
                    return self._done(parse(self.reply))
                self.reply += chunk
                if len(self.reply) > MAX_REPLY:
                    return self._done(NO_ANSWER)
        except (BlockingIOError, InterruptedError):
            return None  # still connecting, or the answer is on its way
        except OSError as e:
            if e.errno == errno.ENOTCONN:
                return None  # still connecting
            return self._done(NO_ANSWER)

    def _done(self, answer: Health) -> Health:
        self.answer = answer
        self.close()
        return answer

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()
