"""An in-memory store, for unit tests of allocation policy (same semantics as the others)."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

from ipam.errors import IPAMError


@dataclass
class _Claim:
    owner: str
    ttl: int | None = None
    expiry: float | None = None

    def live(self, now: float) -> bool:
        return self.expiry is None or self.expiry > now


class MemoryStore:
    def __init__(self) -> None:
        self._held: dict[str, _Claim] = {}
        self._last: dict[str, str] = {}
        self._children: dict[str, MemoryStore] = {}
        self._lock = threading.RLock()

    def lock(self):
        return self._lock

    def child(self, name: str) -> MemoryStore:
        if not name:
            raise IPAMError("store child name '': empty")
        with self._lock:
            return self._children.setdefault(name, MemoryStore())

    def _live(self) -> dict[str, _Claim]:
        now = time.monotonic()
        return {k: c for k, c in self._held.items() if c.live(now)}

    def reserve(self, key: str, owner: str, ttl: int | None = None) -> bool:
        with self._lock:
            if key in self._live():
                return False
            expiry = None if ttl is None else time.monotonic() + ttl
            self._held[key] = _Claim(owner, ttl, expiry)
            return True

    def renew(self, key: str) -> bool:
        with self._lock:
            claim = self._live().get(key)
            if claim is None:
                return False
            if claim.ttl is not None:
                claim.expiry = time.monotonic() + claim.ttl
            return True

    def expire(self) -> list[str]:
        with self._lock:
            live = self._live()
            gone = [k for k in self._held if k not in live]
            self._held = live
            return gone

    def release(self, key: str) -> None:
        with self._lock:
            self._held.pop(key, None)

    def release_owner(self, owner: str) -> list[str]:
        with self._lock:
            keys = [k for k, c in self._live().items() if c.owner == owner]
            for k in keys:
                del self._held[k]
            return keys

    def held_by(self, owner: str) -> list[str]:
        with self._lock:
            return [k for k, c in self._live().items() if c.owner == owner]

    def owner(self, key: str) -> str | None:
        with self._lock:
            claim = self._live().get(key)
            return claim.owner if claim else None

    def keys(self) -> set[str]:
        with self._lock:
            return set(self._live())

    def items(self) -> dict[str, str]:
        with self._lock:
            return {k: c.owner for k, c in self._live().items()}

    def last_reserved(self, pool: str) -> str | None:
        return self._last.get(pool)

    def set_last_reserved(self, pool: str, key: str) -> None:
        self._last[pool] = key
