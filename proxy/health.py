"""HTTP endpoints: /healthz and /metrics (kube-proxy's --healthz-bind-address and
--metrics-bind-address), and one server per healthCheckNodePort of Services with
externalTrafficPolicy: Local, which load balancers probe to find the nodes with endpoints.
"""

from __future__ import annotations

import json
import logging
import socketserver
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

log = logging.getLogger("podnet.proxy")


def parse_bind(address: str, default_port: int) -> tuple[str, int]:
    host, sep, port = address.rpartition(":")
    if not sep:
        return address, default_port
    return host.strip("[]") or "0.0.0.0", int(port)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def server_bind(self) -> None:
        # HTTPServer.server_bind asks reverse DNS for the bound address (socket.getfqdn) only to
        # fill in server_name; on a node whose resolver is unreachable (a lab's node namespace)
        # that waits for the resolver's timeout, about 10 s, before /healthz can answer.
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name, self.server_port = str(host), int(port)


def serve(address: tuple[str, int], handler: Callable[[str], tuple[int, str, str]]) -> _Server:
    """Serve GET requests with handler(path) -> (status, content type, body), on a thread."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 (the http.server API)
            status, ctype, body = handler(self.path)
            data = body.encode()
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(data)))
            self.send_header("X-Content-Type-Options", "nosniff")
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, fmt, *args):  # probes every few seconds would flood the log
            pass

    server = _Server(address, Handler)
    threading.Thread(target=server.serve_forever, name=f"http-{address[1]}", daemon=True).start()
    return server


@dataclass
class Health:
    """Healthy while syncs succeed: 503 once the last successful sync (or a queued change that
    has not been synced) is older than `timeout` seconds."""

    timeout: float
    started: float = 0.0

    def __post_init__(self) -> None:
        self.started = self.started or time.time()

    def check(self, last_success: float | None, last_queued: float | None, now: float | None = None) -> bool:
        now = now or time.time()
        if last_queued is not None and now - last_queued > self.timeout:
            return False
        return now - (last_success or self.started) <= self.timeout


class HealthCheckNodePorts:
    """One HTTP server per healthCheckNodePort: 200 with the count of local endpoints, 503 with none."""

    def __init__(self, bind_host: str = "0.0.0.0"):
        self.bind_host = bind_host
        self.servers: dict[int, _Server] = {}
        self.state: dict[int, tuple[str, str, int]] = {}  # port -> (namespace, name, local endpoints)

    def update(self, wanted: dict[int, tuple[str, str, int]]) -> None:
        self.state = dict(wanted)
        for port in set(self.servers) - set(wanted):
            self.servers.pop(port).shutdown()
        for port in set(wanted) - set(self.servers):
            try:
                self.servers[port] = serve((self.bind_host, port), self._handler(port))
            except OSError as e:
                log.error("cannot serve healthCheckNodePort %d: %s", port, e)

    def _handler(self, port: int) -> Callable[[str], tuple[int, str, str]]:
        return lambda path: self._answer(port)

    def _answer(self, port: int) -> tuple[int, str, str]:
        namespace, name, count = self.state.get(port, ("", "", 0))
        body = json.dumps(
            {"service": {"namespace": namespace, "name": name}, "localEndpoints": count, "serviceProxyHealthy": True}
        )
        return (200 if count > 0 else 503), "application/json", body

    def close(self) -> None:
        self.update({})
