"""The ranges a store's allocators were set up with, kept in the store itself.

An allocator records its range (a cluster CIDR with its node mask size, or a service CIDR)
the first time it allocates. That lets `podnet ipam show` and `gc` work from the store
alone, and it refuses a second allocator that would carve the same cluster CIDR with a
different node mask size -- its subnets would overlap the first one's.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from ipam.errors import IPAMError
from ipam.ranges import Network
from ipam.store import Store

CHILD = "ranges"


@dataclass(frozen=True)
class RegisteredRange:
    kind: str  # "node-subnets" or "clusterips"
    cidr: Network
    detail: str  # the node mask size of a cluster CIDR; "-" for a service CIDR


def register(store: Store, kind: str, cidr: Network, detail: str, field: str) -> None:
    ranges = store.child(CHILD)
    key = f"{kind}:{cidr}"
    if ranges.reserve(key, detail):
        return
    held = ranges.owner(key)
    if held is not None and held != detail:
        raise IPAMError(f"{field}: {detail} differs from {held}, which {cidr} already uses in this store")


def registered(store: Store) -> list[RegisteredRange]:
    out = []
    for key, detail in store.child(CHILD).items().items():
        kind, _, cidr = key.partition(":")
        try:
            out.append(RegisteredRange(kind, ipaddress.ip_network(cidr), detail))
        except ValueError:
            continue  # not one of ours
    return sorted(out, key=lambda r: (r.kind, r.cidr.version, r.cidr))
