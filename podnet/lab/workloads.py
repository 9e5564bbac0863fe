"""What lab pods run: a built-in HTTP server that says who served a request, and the
shared counter the frontends call (the tutorials' guestbook and redis, in miniature).

A pod's server is forked from the lab controller (a warm process: no interpreter start, no
imports, and copy-on-write memory), enters the pod's namespace, binds, and then tells the
controller it is ready by writing one byte to a pipe. SIGTERM is graceful: stop accepting,
finish the requests in flight, exit.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass(frozen=True)
class PodIdentity:
    name: str
    version: str
    kind: str  # "http" or "counter"
    port: int
    backend: tuple[str, int] | None = None  # ClusterIP and port of the counter Service


class _Server(ThreadingHTTPServer):
    daemon_threads = False  # server_close() waits for requests in flight: graceful stop
    block_on_close = True
    request_queue_size = 128
    allow_reuse_address = True


def _handler(pod: PodIdentity, state: dict, lock: threading.Lock):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.0"
        server_version = "podnet-lab"

        def log_message(self, *args):  # quiet: a lab serves thousands of requests
            pass

        def do_GET(self):
            if self.path == "/healthz":
                return self._reply(200, {"ok": True}, "ok\n")
            with lock:
                state["requests"] += 1
                served = state["requests"]
                if pod.kind == "counter" and self.path.startswith("/incr"):
                    state["count"] += 1
                count = state["count"]
            if pod.kind == "counter":
                return self._reply(200, {"pod": pod.name, "version": pod.version, "count": count}, f"{count}\n")
            visits = _visit(pod.backend)
            body = {"pod": pod.name, "version": pod.version, "requests": served, "visits": visits}
            text = f"This request is served by {pod.name} ({pod.version}); requests here: {served}"
            if pod.backend is not None:  # a pod told of no counter says nothing of visits
                text += f"; visits: {'unavailable' if visits is None else visits}"
            return self._reply(200, body, text + "\n")

        def do_HEAD(self):  # wget --spider, curl -I: the headers a GET has, no body, nothing counted
            text = f"This request is served by {pod.name} ({pod.version})\n"
            self._reply(200, {"pod": pod.name, "version": pod.version}, text)

        def _reply(self, status: int, body: dict, text: str) -> None:
            wants_json = "json" in (self.headers.get("Accept") or "")
            data = (json.dumps(body) + "\n" if wants_json else text).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json" if wants_json else "text/plain")
            self.send_header("Content-Length", str(len(data)))
            self.send_header("X-Pod-Name", pod.name)
            self.send_header("X-Pod-Version", pod.version)
            self.send_header("X-Client-Address", self.client_address[0])  # proves: no NAT on the way
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)

    return Handler


def _visit(backend: tuple[str, int] | None) -> int | None:
    """Count this visit in the shared counter, through its Service (pod -> Service -> pod)."""
    if backend is None:
        return None
    try:
        conn = http.client.HTTPConnection(backend[0], backend[1], timeout=1.0)
        conn.request("GET", "/incr")
        resp = conn.getresponse()
        value = int(resp.read().strip() or 0) if resp.status == 200 else None
        conn.close()
        return value
    except (OSError, ValueError, http.client.HTTPException):
        return None


def _loopback_up() -> None:
    """The pod's lo, so a process in the pod can reach itself on 127.0.0.1."""
    import fcntl
    import struct

    siocgifflags, siocsifflags, iff_up = 0x8913, 0x8914, 0x1
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        req = struct.pack("16sh", b"lo", 0)
        flags = struct.unpack("16sh", fcntl.ioctl(s, siocgifflags, req))[1]
        fcntl.ioctl(s, siocsifflags, struct.pack("16sh", b"lo", flags | iff_up))


def serve(pod: PodIdentity, ready_fd: int) -> None:
    """Run in the pod's namespace until SIGTERM. Never returns."""
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGINT})
    _loopback_up()
    state = {"requests": 0, "count": 0}
    server = _Server(("0.0.0.0", pod.port), _handler(pod, state, threading.Lock()))
    os.write(ready_fd, b"1")
    os.close(ready_fd)
    worker = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.5})
    worker.start()
    signal.sigwait({signal.SIGTERM, signal.SIGINT})
    server.shutdown()  # stop accepting
    worker.join()
    server.server_close()  # joins the request threads still answering
    os._exit(0)
