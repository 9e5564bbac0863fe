"""A small client for etcd v3's JSON gateway (POST /v3/...), enough for IPAM's claims.

Plain HTTP/1.1 with one kept-alive connection per thread and process: no gRPC code
generation and nothing beyond the standard library. etcd's gateway speaks protobuf-JSON:
keys and values are base64, 64-bit integers are strings, and fields equal to their zero
value are left out (a failed transaction has no "succeeded").

Any failure to reach etcd (refused, reset, timed out, a 5xx) is StoreUnavailable: the
caller may try again, and nothing it was not told about has been claimed for it -- except
that a request lost after etcd applied it may have taken effect, which only ever leaves a
key held (never given out twice, because every claim is a compare-and-create).
"""

from __future__ import annotations

import base64
import http.client
import json
import os
import threading
from dataclasses import dataclass

from ipam.errors import IPAMError, StoreUnavailable

TIMEOUT = 5.0  # seconds; a claim on loopback takes about 2 ms


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


class EtcdGateway:
    def __init__(self, host: str, port: int, timeout: float = TIMEOUT) -> None:
        self.host = host
        self.port = port
        self.timeout = timeout
        self._local = threading.local()

    @property
    def endpoint(self) -> str:
        return f"{self.host}:{self.port}"

    def _connection(self) -> tuple[http.client.HTTPConnection, bool]:
        """This thread's connection (made anew after a fork), and whether it was used before."""
        conn = getattr(self._local, "conn", None)
        if conn is not None and self._local.pid == os.getpid():
            return conn, True
        conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
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
                raise StoreUnavailable(f"etcd at {self.endpoint} is unreachable ({e}); try again") from None
            except OSError as e:
                self._drop()
                raise StoreUnavailable(f"etcd at {self.endpoint} is unreachable ({e}); try again") from None
            return self._decode(path, resp.status, payload)
        raise StoreUnavailable(f"etcd at {self.endpoint} closed the connection; try again")

    def _decode(self, path: str, status: int, payload: bytes) -> dict:
        try:
            out = json.loads(payload or b"{}")
        except ValueError:
            raise StoreUnavailable(f"etcd at {self.endpoint}: unreadable answer to {path}; try again") from None
        if status >= 500 or status == 429:
            self._drop()
            raise StoreUnavailable(f"etcd at {self.endpoint}: {out.get('error', status)}; try again")
        if status != 200:
            raise IPAMError(f"etcd at {self.endpoint} refused {path}: {out.get('error', status)}")
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

    def put(self, key: str, value: str) -> None:
        self.post("/v3/kv/put", {"key": b64(key), "value": b64(value)})

    def delete(self, key: str) -> None:
        self.post("/v3/kv/deleterange", {"key": b64(key)})

    def get(self, key: str) -> KeyValue | None:
        kvs = self.post("/v3/kv/range", {"key": b64(key)}).get("kvs", [])
        return _kv(kvs[0]) if kvs else None

    def get_prefix(self, prefix: str, keys_only: bool = False) -> list[KeyValue]:
        body: dict[str, str | bool] = {"key": b64(prefix), "range_end": prefix_end(prefix)}
        if keys_only:
            body["keys_only"] = True
        return [_kv(kv) for kv in self.post("/v3/kv/range", body).get("kvs", [])]

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
        except IPAMError as e:
            if "lease not found" not in str(e):  # expired already: what revoking wanted
                raise


def _put(key: str, value: str, lease: int) -> dict:
    put = {"key": b64(key), "value": b64(value)}
    if lease:
        put["lease"] = str(lease)
    return put


def _kv(raw: dict) -> KeyValue:
    return KeyValue(unb64(raw["key"]), unb64(raw.get("value", "")), int(raw.get("lease", 0)))
