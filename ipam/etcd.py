"""The etcd v3 store: claims shared by every machine that talks to one etcd cluster.

Layout under the store's prefix (e.g. /podnet/node-subnets):
  <prefix>/@k/<key>      -> owner       one claim; created only if absent (create_revision == 0)
  <prefix>/@o/<owner hex>/<key> -> ""   the owner index, written and deleted with the claim
  <prefix>/@last/<pool>  -> key         the allocation hint of a pool (advisory, last writer wins)
  <prefix>/<child>/...                  a child store

A claim with a TTL is attached to an etcd lease of its own (its index entry too); etcd
deletes both when the lease is not kept alive, so a dead node's subnet frees itself with
nobody cleaning up. The owner index spares a listing of every claim when one owner's keys
are wanted (a pod's address on ADD and DEL): the JSON gateway costs about 40 us a key
listed. lock() is a no-op: correctness rests on the compare-and-create transaction alone,
so two allocators that pick the same free key at once see one of them win and the other
move on.
"""

from __future__ import annotations

import contextlib

from ipam.errors import IPAMError
from ipam.etcd_gateway import EtcdGateway

CLAIMS = "@k/"
OWNERS = "@o/"
HINTS = "@last/"


class EtcdStore:
    def __init__(self, gateway: EtcdGateway, prefix: str) -> None:
        self.gateway = gateway
        self.prefix = prefix.rstrip("/") + "/"

    def __repr__(self) -> str:
        return f"EtcdStore(etcd://{self.gateway.endpoint}{self.prefix})"

    def child(self, name: str) -> EtcdStore:
        if not name or name.startswith("@"):
            raise IPAMError(f"store child name {name!r}: empty or starting with '@'")
        return EtcdStore(self.gateway, f"{self.prefix}{name}")

    def _claim(self, key: str) -> str:
        return f"{self.prefix}{CLAIMS}{key}"

    def _owned(self, owner: str) -> str:
        # Hex: an owner may hold '/' (namespace/service), which would blur the prefix.
        return f"{self.prefix}{OWNERS}{owner.encode().hex()}/"

    def lock(self):
        return contextlib.nullcontext()

    def reserve(self, key: str, owner: str, ttl: int | None = None) -> bool:
        index = self._owned(owner) + key
        if ttl is None:
            return self.gateway.create(self._claim(key), owner, index=index)
        lease = self.gateway.grant(ttl)
        if self.gateway.create(self._claim(key), owner, lease, index=index):
            return True
        self.gateway.revoke(lease)
        return False

    def renew(self, key: str) -> bool:
        kv = self.gateway.get(self._claim(key))
        if kv is None:
            return False
        return kv.lease == 0 or self.gateway.keepalive(kv.lease) > 0

    def expire(self) -> list[str]:
        return []  # etcd deletes a key when its lease expires

    def release(self, key: str) -> None:
        kv = self.gateway.get(self._claim(key))
        if kv is not None:
            self.gateway.delete_if(self._claim(key), kv.value, also=self._owned(kv.value) + key)

    def release_owner(self, owner: str) -> list[str]:
        released = []
        for key in self.held_by(owner):
            # Deleted only while still ours: a key freed and claimed again meanwhile stays.
            if self.gateway.delete_if(self._claim(key), owner, also=self._owned(owner) + key):
                released.append(key)
        return released

    def held_by(self, owner: str) -> list[str]:
        start = len(self._owned(owner))
        return [kv.key[start:] for kv in self.gateway.get_prefix(self._owned(owner), keys_only=True)]

    def owner(self, key: str) -> str | None:
        kv = self.gateway.get(self._claim(key))
        return kv.value if kv else None

    def keys(self) -> set[str]:
        start = len(self.prefix) + len(CLAIMS)
        return {kv.key[start:] for kv in self.gateway.get_prefix(self.prefix + CLAIMS, keys_only=True)}

    def items(self) -> dict[str, str]:
        start = len(self.prefix) + len(CLAIMS)
        return {kv.key[start:]: kv.value for kv in self.gateway.get_prefix(self.prefix + CLAIMS)}

    def last_reserved(self, pool: str) -> str | None:
        kv = self.gateway.get(f"{self.prefix}{HINTS}{pool}")
        return kv.value if kv else None

    def set_last_reserved(self, pool: str, key: str) -> None:
        self.gateway.put(f"{self.prefix}{HINTS}{pool}", key)
