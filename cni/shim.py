"""The plugin executables' front door: hand the call to the node's warm podnet CNI server
if one runs in this network namespace, else do the work in this process.

Why: a runtime starts a fresh plugin process for every pod. CPython's start-up plus the
plugin's imports (ipaddress, ctypes, the plugin's own modules; the ADD path keeps json, re,
enum, hashlib and dataclasses out, see tests/cni/test_lean_start.py) cost several times the
netlink work itself, and several times a Go plugin's whole run. This
module imports only modules built into the interpreter (posix, _socket), forwards the
environment and stdin over an abstract unix socket, and relays the answer. Abstract
sockets belong to a network namespace, so the plugin always reaches the server of the
node it runs on -- several lab nodes on one machine each have their own.

Without a server the plugin is complete on its own: same code, same results, slower.
"""

import _socket
import posix
import sys

SOCKET_NAME = b"\0podnet-cni"
# A request: plugin name, newline, 4-byte length of the environment block, the block
# (NUL-separated KEY=VALUE), then stdin until end of stream. A reply: one byte of exit
# status, then the plugin's stdout. The front doors (this one and cni/frontdoor.c) put
# stdin's length in the block: a client killed while sending also ends the stream, and the
# server must not run what it cut short. (A request without it comes from an older launcher.)
STDIN_LENGTH = "PODNET_CNI_STDIN_LENGTH"


class IncompleteRequest(ValueError):
    """The client's request ended before its declared end: its sender died while sending."""


def encode_request(plugin: str, environ: dict[bytes, bytes], stdin: bytes) -> bytes:
    environ = {**environ, STDIN_LENGTH.encode(): str(len(stdin)).encode()}
    env = b"\0".join(k + b"=" + v for k, v in environ.items())
    return plugin.encode() + b"\n" + len(env).to_bytes(4, "big") + env + stdin


def decode_request(data: bytes) -> tuple[str, dict[str, str], bytes]:
    plugin, newline, rest = data.partition(b"\n")
    size = int.from_bytes(rest[:4], "big")
    if not newline or len(rest) < 4 + size:
        raise IncompleteRequest(f"{len(data)} bytes, cut short in the plugin name or environment")
    env = {}
    for item in rest[4 : 4 + size].split(b"\0"):
        key, sep, value = item.partition(b"=")
        if sep:
            env[key.decode()] = value.decode()
    stdin = rest[4 + size :]
    declared = env.pop(STDIN_LENGTH, None)
    if declared is not None and declared != str(len(stdin)):
        raise IncompleteRequest(f"stdin of {len(stdin)} bytes, {declared} declared")
    return plugin.decode(), env, stdin


def _read_all(read) -> bytes:
    chunks = []
    while chunk := read(1 << 16):
        chunks.append(chunk)
    return b"".join(chunks)


def forward(plugin: str, environ: dict[bytes, bytes], stdin: bytes) -> tuple[int, bytes] | None:
    """(exit status, stdout) from the server, or None when no server listens here."""
    sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    try:
        sock.connect(SOCKET_NAME)
    except OSError:
        sock.close()
        return None
    reason: str | None = "the server closed the connection without an answer"
    try:
        sock.sendall(encode_request(plugin, environ, stdin))
        sock.shutdown(_socket.SHUT_WR)
        reply = _read_all(sock.recv)
    except OSError as e:
        reply, reason = b"", e.strerror
    finally:
        sock.close()
    if not reply:
        # The request reached the server: running it again here could do the work twice.
        msg = f'{{"cniVersion": "1.1.0", "code": 11, "msg": "podnet CNI server failed: {reason}; try again"}}\n'
        return 1, msg.encode()
    return reply[0], reply[1:]


def run(plugin: str) -> None:
    environ = posix.environ
    stdin = b"" if environ.get(b"CNI_COMMAND") == b"VERSION" else _read_all(lambda n: posix.read(0, n))
    answer = forward(plugin, environ, stdin)
    if answer is None:
        in_process(plugin, stdin)
        return
    status, out = answer
    while out:
        out = out[posix.write(1, out) :]
    sys.exit(status)


def in_process(plugin: str, stdin: bytes) -> None:
    # The cyclic collector off for the rest of this short-lived process: importing the plugin
    # makes thousands of objects that live until exit, and the collector's passes over them
    # (gen0 every 700 allocations, older generations in turn) were a fifth of a standalone
    # ADD's CPU, freeing nothing. Reference counting still frees everything acyclic.
    import gc

    gc.disable()
    import io

    from cni import skel

    status = skel.run(handlers(plugin), stdin=io.BytesIO(stdin))
    # Done: every file and socket the call used is closed, and its answer written. Leaving by
    # _exit skips the interpreter's teardown (a last full collection, every module's objects
    # freed one by one), which costs a plugin start milliseconds and does nothing the kernel
    # does not do at exit anyway. The standard streams are flushed first, as teardown would,
    # with its status when that fails.
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except (OSError, ValueError):
        status = 120
    posix._exit(status)


def handlers(plugin: str) -> dict:
    if plugin == "podnet-ipam":
        from cni.ipam_plugin import HANDLERS
    else:
        from cni.plugin import HANDLERS
    return HANDLERS
