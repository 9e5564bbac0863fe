"""The store interface under every allocator (pod IPs, node subnets, ClusterIPs).

The allocation policy lives in the allocators; a store only answers "claim this key for
this owner unless someone holds it", atomically. Keys are strings (an address, a subnet);
an owner is a short string the allocator builds (e.g. "<container id>\\n<ifname>").
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Protocol


class Store(Protocol):
    def lock(self) -> AbstractContextManager:
        """Serialise allocators sharing this store (a no-op where claims are transactions)."""

    def reserve(self, key: str, owner: str) -> bool:
        """Claim `key` for `owner`; False when it is already held. Atomic and durable."""

    def release(self, key: str) -> None:
        """Forget `key` (no error when it is not held)."""

    def release_owner(self, owner: str) -> list[str]:
        """Forget every key `owner` holds; return them."""

    def owner(self, key: str) -> str | None:
        """Who holds `key`, or None."""

    def keys(self) -> set[str]:
        """Every held key (cheaper than items() where owners live apart from keys)."""

    def items(self) -> dict[str, str]:
        """Every held key and its owner."""

    def last_reserved(self, pool: str) -> str | None:
        """The key last handed out from `pool` (allocation continues after it)."""

    def set_last_reserved(self, pool: str, key: str) -> None: ...
