"""A small client for etcd v3's JSON gateway (POST /v3/...): key-value, transactions, leases
and watches. Neutral: IPAM's etcd store, the etcd objects source, the node agent and
`podnet cluster` all use it.

Plain HTTP/1.1 with one kept-alive connection per thread and process: no gRPC code
generation and nothing beyond the standard library. etcd's gateway speaks protobuf-JSON:
keys and values are base64, 64-bit integers are strings, and fields equal to their zero
value are left out (a failed transaction has no "succeeded", a PUT event has no "type").

Any failure to reach etcd (refused, reset, timed out, a 5xx) raises `unavailable_error`:
the caller may try again, and nothing it was not told about has been done for it -- except
that a request lost after etcd applied it may have taken effect, which only ever leaves a
key held (never given out twice, because every claim is a compare-and-create). A subclass
names its own error classes (ipam.etcd_gateway maps them to IPAM's).

`netns`: a client can talk to an etcd that listens inside another network namespace (a
lab's or a test's): its sockets are opened there, and stay bound to it.
"""

from __future__ import annotations

import base64
import contextlib
import http.client
import json
import os
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field

TIMEOUT = 5.0  # seconds; a claim on loopback takes about 2 ms
WATCH_IDLE = 30.0  # a watch that hears nothing this long is re-opened (a half-dead peer never says so)


class EtcdError(Exception):
    """etcd refused a request (a bad request, a lease not found ...)."""


class EtcdUnavailable(EtcdError):
    """etcd cannot be reached now; the call may succeed later."""


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def unb64(text: str) -> str:
    return base64.b64decode(text).decode()


def prefix_end(prefix: str) -> str:
    """The range_end that makes a range request cover every key starting with `prefix`."""
    raw = bytearray(prefix.encode())
    raw[-1] += 1  # prefixes here end in '/', never in 0xff
    return base64.b64encode(bytes(raw)).decode()


@dataclass(frozen=True)
class KeyValue:
    key: str
    value: str
    lease: int
    mod_revision: int = 0


@dataclass(frozen=True)
class WatchEvent:
    kind: str  # "PUT" or "DELETE"
    kv: KeyValue


@dataclass(frozen=True)
class WatchBatch:
    """One message of a watch stream: events at `revision`, or the end of the watch."""

    revision: int
    events: tuple[WatchEvent, ...] = ()
    compacted: int = 0  # >0: the start revision was compacted away; list again from scratch
    canceled: bool = False


def connect_in_netns(target: str, host: str, port: int, timeout: float | None) -> socket.socket:
    """A TCP connection opened inside the named namespace; the socket keeps it wherever used."""
    import netns  # the project's namespace primitive; only clients of another namespace need it

    sock = netns.socket(target)
    try:
        sock.settimeout(timeout)
        sock.connect((host, port))
    except OSError:
        sock.close()
        raise
    return sock


class _Connection(http.client.HTTPConnection):
    def __init__(self, host: str, port: int, timeout: float, netns: str) -> None:
        super().__init__(host, port, timeout=timeout)
        self.netns = netns

    def connect(self) -> None:
        if not self.netns:
            return super().connect()
        self.sock = connect_in_netns(self.netns, self.host, self.port, self.timeout)


@dataclass
class Watch:
    """An open watch stream; iterate for batches, close() from any thread to end it."""

    conn: http.client.HTTPConnection
    resp: http.client.HTTPResponse
    endpoint: str
    unavailable: type[Exception]
    _closed: bool = field(default=False)

    def __iter__(self) -> Iterator[WatchBatch]:
        while not self._closed:
            try:
                line = self.resp.readline()
            except TimeoutError:
                raise  # idle: the caller re-opens from its last revision
            # AttributeError: close() from another thread can pull the stream out from under
            # http.client's chunked reader
            except (OSError, http.client.HTTPException, ValueError, AttributeError) as e:
                if self._closed:
                    return
                raise self.unavailable(f"etcd at {self.endpoint}: watch lost ({e})") from None
            if not line:
                if self._closed:
                    return
                raise self.unavailable(f"etcd at {self.endpoint}: watch stream ended")
            if not line.strip():
                continue
            try:
                msg = json.loads(line)
            except ValueError:
                raise self.unavailable(f"etcd at {self.endpoint}: unreadable watch message") from None
            if "error" in msg:
                raise self.unavailable(f"etcd at {self.endpoint}: watch error {msg['error']}")
            yield _batch(msg.get("result", {}))

    def close(self) -> None:
        self._closed = True
        sock = self.conn.sock
        if sock is not None:
            with contextlib.suppress(OSError):  # already closed by the peer
                sock.shutdown(socket.SHUT_RDWR)
        self.conn.close()


def _batch(result: dict) -> WatchBatch:
    events = tuple(WatchEvent(e.get("type", "PUT"), _kv(e["kv"])) for e in result.get("events", []))
    return WatchBatch(
        revision=int(result.get("header", {}).get("revision", 0)),
        events=events,
        compacted=int(result.get("compact_revision", 0)),
        canceled=bool(result.get("canceled")),
    )


class EtcdClient:
    unavailable_error: type[Exception] = EtcdUnavailable
    refused_error: type[Exception] = EtcdError

    def __init__(self, host: str, port: int, timeout: float = TIMEOUT, netns: str = "") -> None:
        self.host = host
        self.port = port
        self.timeout = timeout
        self.netns = netns
        self._local = threading.local()

    @property
    def endpoint(self) -> str:
        return f"{self.host}:{self.port}"

    def _new_connection(self, timeout: float) -> http.client.HTTPConnection:
        return _Connection(self.host, self.port, timeout, self.netns)

    def _connection(self) -> tuple[http.client.HTTPConnection, bool]:
        """This thread's connection (made anew after a fork), and whether it was used before."""
        conn = getattr(self._local, "conn", None)
        if conn is not None and self._local.pid == os.getpid():
            return conn, True
        conn = self._new_connection(self.timeout)
        self._local.conn, self._local.pid = conn, os.getpid()
        return conn, False

    def _drop(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
        self._local.conn = None

    def post(self, path: str, body: dict) -> dict:
        data = json.dumps(body).encode()
        for _ in range(2):
            conn, reused = self._connection()
            try:
                conn.request("POST", path, data, {"Content-Type": "application/json"})
                resp = conn.getresponse()
                payload = resp.read()
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError) as e:
                self._drop()
                # A kept-alive connection the server closed (etcd restarted): the request
                # never reached a live etcd, so one retry on a fresh connection is safe.
                if reused:
                    continue
                raise self.unavailable_error(f"etcd at {self.endpoint} is unreachable ({e}); try again") from None
            except OSError as e:
                self._drop()
                raise self.unavailable_error(f"etcd at {self.endpoint} is unreachable ({e}); try again") from None
            return self._decode(path, resp.status, payload)
        raise self.unavailable_error(f"etcd at {self.endpoint} closed the connection; try again")

    def _decode(self, path: str, status: int, payload: bytes) -> dict:
        try:
            out = json.loads(payload or b"{}")
        except ValueError:
            raise self.unavailable_error(f"etcd at {self.endpoint}: unreadable answer to {path}; try again") from None
        if status >= 500 or status == 429:
            self._drop()
            raise self.unavailable_error(f"etcd at {self.endpoint}: {out.get('error', status)}; try again")
        if status != 200:
            raise self.refused_error(f"etcd at {self.endpoint} refused {path}: {out.get('error', status)}")
        return out

    # -- key-value -------------------------------------------------------------------------

    def create(self, key: str, value: str, lease: int = 0, index: str = "") -> bool:
        """Put `key` only if it does not exist (create_revision == 0): one transaction.

        With `index`, that key (empty value, same lease) is put in the same transaction.
        """
        puts = [{"request_put": _put(key, value, lease)}]
        if index:
            puts.append({"request_put": _put(index, "", lease)})
        out = self.post(
            "/v3/kv/txn",
            {
                "compare": [{"key": b64(key), "target": "CREATE", "result": "EQUAL", "create_revision": "0"}],
                "success": puts,
            },
        )
        return bool(out.get("succeeded"))

    def delete_if(self, key: str, value: str, also: str = "") -> bool:
        """Delete `key` (and `also`) only while `key` still holds `value` (never someone's
        newer claim); `also` goes in any case."""
        deletes = [{"request_delete_range": {"key": b64(key)}}]
        extra = [{"request_delete_range": {"key": b64(also)}}] if also else []
        out = self.post(
            "/v3/kv/txn",
            {
                "compare": [{"key": b64(key), "target": "VALUE", "result": "EQUAL", "value": b64(value)}],
                "success": deletes + extra,
                "failure": extra,
            },
        )
        return bool(out.get("succeeded"))

    def put(self, key: str, value: str, lease: int = 0) -> None:
        self.post("/v3/kv/put", _put(key, value, lease))

    def put_all(self, items: dict[str, str], deletes: tuple[str, ...] | list[str] = ()) -> int:
        """Put every key of `items` and delete every key of `deletes`, in one transaction (all
        or nothing: a watcher sees one revision); the revision it made."""
        ops: list[dict] = [{"request_put": _put(k, v, 0)} for k, v in items.items()]
        ops += [{"request_delete_range": {"key": b64(k)}} for k in deletes]
        out = self.post("/v3/kv/txn", {"success": ops})
        return int(out.get("header", {}).get("revision", 0))

    def delete(self, key: str) -> bool:
        """Delete `key`; whether it existed."""
        return int(self.post("/v3/kv/deleterange", {"key": b64(key)}).get("deleted", 0)) > 0

    def get(self, key: str) -> KeyValue | None:
        kvs = self.post("/v3/kv/range", {"key": b64(key)}).get("kvs", [])
        return _kv(kvs[0]) if kvs else None

    def get_prefix(self, prefix: str, keys_only: bool = False) -> list[KeyValue]:
        return self.list_prefix(prefix, keys_only)[0]

    def list_prefix(self, prefix: str, keys_only: bool = False) -> tuple[list[KeyValue], int]:
        """Every key under `prefix`, and the store's revision they were read at (watch after it)."""
        body: dict = {"key": b64(prefix), "range_end": prefix_end(prefix)}
        if keys_only:
            body["keys_only"] = True
        out = self.post("/v3/kv/range", body)
        revision = int(out.get("header", {}).get("revision", 0))
        return [_kv(kv) for kv in out.get("kvs", [])], revision

    def revision(self) -> int:
        """The store's current revision (a count of one key: no values travel)."""
        out = self.post("/v3/kv/range", {"key": b64("\0"), "count_only": True})
        return int(out.get("header", {}).get("revision", 0))

    def compact(self, revision: int) -> None:
        self.post("/v3/kv/compaction", {"revision": str(revision), "physical": True})

    # -- watches ---------------------------------------------------------------------------

    def watch_prefix(self, prefix: str, start_revision: int, idle: float = WATCH_IDLE) -> Watch:
        """Open a watch of every key under `prefix`, from `start_revision` on.

        A connection of its own (a stream holds it for as long as the watch lives); a read
        that waits longer than `idle` raises TimeoutError.
        """
        body = {
            "create_request": {
                "key": b64(prefix),
                "range_end": prefix_end(prefix),
                "start_revision": str(start_revision),
            }
        }
        conn = self._new_connection(self.timeout)
        try:
            conn.request("POST", "/v3/watch", json.dumps(body).encode(), {"Content-Type": "application/json"})
            resp = conn.getresponse()
        except (OSError, http.client.HTTPException) as e:
            conn.close()
            raise self.unavailable_error(f"etcd at {self.endpoint} is unreachable ({e}); try again") from None
        if resp.status != 200:
            payload = resp.read()
            conn.close()
            self._decode("/v3/watch", resp.status, payload)
            raise self.unavailable_error(f"etcd at {self.endpoint}: watch answered {resp.status}")
        if conn.sock is not None:
            conn.sock.settimeout(idle)
        return Watch(conn, resp, self.endpoint, self.unavailable_error)

    # -- leases ----------------------------------------------------------------------------

    def grant(self, ttl: int) -> int:
        return int(self.post("/v3/lease/grant", {"TTL": str(ttl)})["ID"])

    def keepalive(self, lease: int) -> int:
        """Renew `lease`; its TTL in seconds, 0 when it has already expired."""
        out = self.post("/v3/lease/keepalive", {"ID": str(lease)})
        return int(out.get("result", {}).get("TTL", 0))

    def revoke(self, lease: int) -> None:
        try:
            self.post("/v3/lease/revoke", {"ID": str(lease)})
        except self.refused_error as e:
            if "lease not found" not in str(e):  # expired already: what revoking wanted
                raise


def _put(key: str, value: str, lease: int) -> dict:
    put = {"key": b64(key), "value": b64(value)}
    if lease:
        put["lease"] = str(lease)
    return put


def _kv(raw: dict) -> KeyValue:
    return KeyValue(
        unb64(raw["key"]), unb64(raw.get("value", "")), int(raw.get("lease", 0)), int(raw.get("mod_revision", 0))
    )
