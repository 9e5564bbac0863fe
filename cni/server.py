"""The node's warm podnet CNI server: it runs the plugins' verbs for the shims (cni/shim.py).

One thread per call; each call enters the pod's namespace on its own thread (setns moves
only the calling thread), so calls run side by side as separate plugin processes would.
Only root may call: the server does what a root-run plugin would.
"""

from __future__ import annotations

import io
import logging
import socket
import struct
import threading

from cni import skel
from cni.plugin import STOP_AT
from cni.shim import SOCKET_NAME, IncompleteRequest, decode_request, handlers

SO_PEERCRED = getattr(socket, "SO_PEERCRED", 17)
log = logging.getLogger("podnet.cni")


class CNIServer:
    def __init__(self, name: bytes = SOCKET_NAME) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            self.sock.bind(name)
        except OSError as e:
            self.sock.close()
            raise OSError(
                e.errno, f"a podnet CNI server already listens in this network namespace ({e.strerror})"
            ) from None
        self.sock.listen(256)
        self._closing = threading.Event()

    def serve_forever(self) -> None:
        while not self._closing.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                if self._closing.is_set():
                    return
                raise
            threading.Thread(target=self.handle, args=(conn,), daemon=True).start()

    def close(self) -> None:
        self._closing.set()
        self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()

    def handle(self, conn: socket.socket) -> None:
        with conn:
            _pid, uid, _gid = struct.unpack("3i", conn.getsockopt(socket.SOL_SOCKET, SO_PEERCRED, 12))
            if uid != 0:
                return
            chunks = []
            while chunk := conn.recv(1 << 16):
                chunks.append(chunk)
            try:
                plugin, environ, stdin = decode_request(b"".join(chunks))
            except IncompleteRequest as e:
                # Its sender is gone; running what arrived could act on half an environment.
                log.warning("dropped an incomplete request: %s", e)
                return
            # The crash tests' fault injection stops the plugin's own process; here that
            # process is the server of every pod on the node, so the hook does not apply.
            environ.pop(STOP_AT, None)
            out = io.StringIO()
            try:
                status = skel.run(handlers(plugin), environ=environ, stdin=io.BytesIO(stdin), stdout=out)
            except Exception:  # skel already answers every error; this is a last resort
                log.exception("%s %s: unanswered error", plugin, environ.get("CNI_COMMAND", "?"))
                return
            log.debug(
                "%s %s container %s: exit %d",
                plugin,
                environ.get("CNI_COMMAND", "?"),
                environ.get("CNI_CONTAINERID", "-"),
                status,
            )
            conn.sendall(bytes([status]) + out.getvalue().encode())
