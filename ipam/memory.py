"""An in-memory store, for unit tests of allocation policy."""

from __future__ import annotations

import threading


class MemoryStore:
    def __init__(self) -> None:
        self._held: dict[str, str] = {}
        self._last: dict[str, str] = {}
        self._lock = threading.RLock()

    def lock(self):
        return self._lock

    def reserve(self, key: str, owner: str) -> bool:
        with self._lock:
            if key in self._held:
                return False
            self._held[key] = owner
            return True

    def release(self, key: str) -> None:
        with self._lock:
            self._held.pop(key, None)

    def release_owner(self, owner: str) -> list[str]:
        with self._lock:
            keys = [k for k, o in self._held.items() if o == owner]
            for k in keys:
                del self._held[k]
            return keys

    def owner(self, key: str) -> str | None:
        return self._held.get(key)

    def keys(self) -> set[str]:
        with self._lock:
            return set(self._held)

    def items(self) -> dict[str, str]:
        with self._lock:
            return dict(self._held)

    def last_reserved(self, pool: str) -> str | None:
        return self._last.get(pool)

    def set_last_reserved(self, pool: str, key: str) -> None:
        self._last[pool] = key
