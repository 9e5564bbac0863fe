"""Pod addresses: one address per range set for each (container id, ifname), over a Store."""

from __future__ import annotations

import ipaddress

from ipam.errors import AlreadyAllocated, IPAMError, RangeFull
from ipam.ranges import Address, Range, RangeSet
from ipam.value import Value

# Without importing typing, which costs each standalone plugin run more than it is worth:
# the store interface is only needed by the type checker (which treats this name as true).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Final

    from ipam.store import Store


def owner_key(container_id: str, ifname: str) -> str:
    return f"{container_id}\n{ifname}"


def split_owner(owner: str) -> tuple[str, str]:
    container_id, _, ifname = owner.partition("\n")
    return container_id, ifname


# A plain class, not a dataclass: see the note above ipam.ranges.Range.
class Allocation(Value):
    """One address handed out, and the range it came from."""

    __slots__ = ("ip", "range")

    def __init__(self, ip: Address, range: Range) -> None:
        self.ip: Final = ip
        self.range: Final = range

    @property
    def interface(self) -> ipaddress.IPv4Interface | ipaddress.IPv6Interface:
        """The address with its subnet's prefix, as host-local reports it."""
        return ipaddress.ip_interface((self.ip, self.range.subnet.prefixlen))


class AddressPool:
    """The address policy of host-local, over any Store.

    Allocation continues after the last reserved address; network, broadcast and gateway
    addresses are never handed out; an owner that already holds an address in a range set
    gets that address back (a runtime retrying an ADD after a crash must not leak one).
    """

    def __init__(self, store: Store, range_sets: tuple[RangeSet, ...]) -> None:
        self.store = store
        self.range_sets = range_sets

    def allocate(self, owner: str, requested: tuple[Address, ...] = ()) -> list[Allocation]:
        with self.store.lock():
            # Only the owner's own claims are read: a free address is found by claiming it
            # (after the last one handed out, the next is usually free), which costs one
            # claim rather than a listing of every pod -- dear on etcd's JSON gateway.
            mine = {ipaddress.ip_address(k) for k in self.store.held_by(owner)}
            done: list[Allocation] = []
            try:
                for index, range_set in enumerate(self.range_sets):
                    want = [ip for ip in requested if ip.version == range_set.version]
                    done.append(self._allocate_one(index, range_set, owner, mine, want))
            except Exception:
                for a in done:
                    if a.ip not in mine:
                        self.store.release(str(a.ip))
                raise
            return done

    def _allocate_one(self, index, range_set: RangeSet, owner, mine, want) -> Allocation:
        for ip in mine:
            r = range_set.find(ip)
            if r is not None:
                return Allocation(ip, r)
        if want:
            ip = want[0]
            r = range_set.find(ip)
            if r is None or not r.usable(ip):
                raise IPAMError(f"requested IP {ip} is not a usable address of the configured ranges")
            if not self.store.reserve(str(ip), owner):
                raise AlreadyAllocated(f"requested IP {ip} is already allocated")
            return Allocation(ip, r)
        pool = str(index)
        last = self.store.last_reserved(pool)
        after = ipaddress.ip_address(last) if last else None
        for r, ip in range_set.candidates(after):
            if self.store.reserve(str(ip), owner):
                self.store.set_last_reserved(pool, str(ip))
                return Allocation(ip, r)
        ranges = ", ".join(f"{r.start}-{r.end}" for r in range_set.ranges)
        raise RangeFull(f"no free address left in range set {index} ({ranges})")

    def release(self, owner: str) -> list[str]:
        with self.store.lock():
            return self.store.release_owner(owner)

    def held_by(self, owner: str) -> list[Allocation]:
        out = []
        for key in self.store.held_by(owner):
            ip = ipaddress.ip_address(key)
            for range_set in self.range_sets:
                r = range_set.find(ip)
                if r is not None:
                    out.append(Allocation(ip, r))
        return out

    def gc(self, valid_owners: set[str]) -> list[str]:
        """Release every address whose owner is not among `valid_owners`."""
        with self.store.lock():
            stale_owners = {o for o in self.store.items().values() if o not in valid_owners}
            # By owner, not by key: a store without a real lock (etcd) then frees a key only
            # while the stale owner still holds it, never a claim made again meanwhile.
            return [key for owner in sorted(stale_owners) for key in self.store.release_owner(owner)]
