"""The store interface under every allocator (pod IPs, node subnets, ClusterIPs).

The allocation policy lives in the allocators; a store only answers "claim this key for
this owner unless someone holds it", atomically. Keys are strings (an address, a subnet);
an owner is a short string the allocator builds (e.g. "<container id>\\n<ifname>").

A claim may carry a lease (a TTL in seconds): it vanishes unless renewed in time, as a node
subnet does when its node dies. Each allocator works in a child store of its own (node
subnets, ClusterIPs, one per pod network), so their keys never mix.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Protocol


class Store(Protocol):
    def lock(self) -> AbstractContextManager:
        """Serialise allocators sharing this store (a no-op where claims are transactions)."""

    def reserve(self, key: str, owner: str, ttl: int | None = None) -> bool:
        """Claim `key` for `owner`; False when it is already held. Atomic and durable.

        With `ttl`, the claim expires `ttl` seconds after it was made or last renewed. A
        claim with a TTL is made under lock() (the local store needs that to expire the
        claim it replaces safely).
        """

    def renew(self, key: str) -> bool:
        """Restart the lease of `key`'s claim; False when the claim is gone (expired)."""

    def expire(self) -> list[str]:
        """Drop claims whose lease ran out; return them (etcd does this by itself)."""

    def child(self, name: str) -> Store:
        """The store of one allocator, under this one (its keys never mix with others')."""

    def release(self, key: str) -> None:
        """Forget `key` (no error when it is not held)."""

    def release_owner(self, owner: str) -> list[str]:
        """Forget every key `owner` holds; return them."""

    def owner(self, key: str) -> str | None:
        """Who holds `key`, or None."""

    def held_by(self, owner: str) -> list[str]:
        """The keys `owner` holds (from an index where listing every claim is dear)."""

    def keys(self) -> set[str]:
        """Every held key (cheaper than items() where owners live apart from keys)."""

    def items(self) -> dict[str, str]:
        """Every held key and its owner."""

    def last_reserved(self, pool: str) -> str | None:
        """The key last handed out from `pool` (allocation continues after it)."""

    def set_last_reserved(self, pool: str, key: str) -> None: ...
