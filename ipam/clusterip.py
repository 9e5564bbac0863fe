"""ClusterIPs: Service addresses out of the service CIDR(s), never the network or broadcast.

The policy of Kubernetes' allocator since KEP-3070 (ServiceIPStaticSubrange): the range is
split at an offset of min(max(16, size/16), 256) addresses (none for ranges of 16 or fewer);
a Service that asks for a specific address may take it anywhere, while a dynamic allocation
picks a random address of the upper part first and falls back to the lower part only when
the upper part is full -- so fixed addresses chosen from the low end rarely collide.

Many allocators (processes, machines) share one store without a lock: each picks a random
candidate and claims it with the store's atomic reserve; a loser just tries another. Each
keeps its own view of the taken addresses, learnt from its own claims, won and lost, and
re-read from the store only before it declares the range full (or after a long run of lost
claims): a listing costs far more than a claim (etcd's JSON gateway takes ~40 us a key), and
a stale view only costs a lost claim, never a duplicate.
"""

from __future__ import annotations

import builtins
import ipaddress
import random
from collections.abc import Iterator
from dataclasses import dataclass

from ipam import registry
from ipam.errors import AlreadyAllocated, IPAMError, RangeFull, StoreUnavailable
from ipam.ranges import Address, Network
from ipam.store import Store
from ipam.usage import RangeUsage

CHILD = "clusterips"
ANONYMOUS = "-"  # the owner stored for an allocation without one (a claim needs some content)
MAX_IPV6_BITS = 20  # Kubernetes refuses IPv6 service CIDRs larger than /108
REFRESH_AFTER = 64  # claims lost to others in one allocation before re-reading what is taken
RANDOM_PICKS = 32
MAX_ROUNDS = 100


@dataclass(frozen=True)
class ServiceRange:
    cidr: Network

    @property
    def size(self) -> int:
        """Usable addresses: all but the network and the broadcast (last) address."""
        return self.cidr.num_addresses - 2

    @property
    def offset(self) -> int:
        n = self.cidr.num_addresses
        return 0 if n <= 16 else min(max(16, n // 16), 256)

    def address(self, index: int) -> Address:
        return self.cidr.network_address + 1 + index

    def index(self, ip: Address) -> int | None:
        if ip.version != self.cidr.version or ip not in self.cidr:
            return None
        i = int(ip) - int(self.cidr.network_address) - 1
        return i if 0 <= i < self.size else None

    def bands(self) -> list[tuple[int, int]]:
        """[lo, hi) index bands in the order dynamic allocation tries them."""
        offset = min(self.offset, self.size)
        return [(offset, self.size), (0, offset)] if offset else [(0, self.size)]


def parse_service_ranges(service_cidrs: list[str]) -> tuple[ServiceRange, ...]:
    if isinstance(service_cidrs, str) or not service_cidrs:
        raise IPAMError("service-cidr: give one or two CIDRs (one per IP family)")
    ranges = []
    for raw in service_cidrs:
        try:
            cidr = ipaddress.ip_network(raw)
        except (ValueError, TypeError) as e:
            raise IPAMError(f"service-cidr: {raw!r} is not a CIDR ({e})") from None
        if cidr.num_addresses < 4:
            raise IPAMError(f"service-cidr: {cidr} is too small (at least 4 addresses)")
        if cidr.version == 6 and cidr.prefixlen < 128 - MAX_IPV6_BITS:
            raise IPAMError(f"service-cidr: {cidr} is larger than /{128 - MAX_IPV6_BITS}, as Kubernetes requires")
        if cidr.version == 4 and cidr.prefixlen < 8:
            raise IPAMError(f"service-cidr: {cidr} is larger than /8")
        ranges.append(ServiceRange(cidr))
    families = [r.cidr.version for r in ranges]
    if len(set(families)) != len(families):
        raise IPAMError("service-cidr: two CIDRs of the same IP family (give one per family)")
    return tuple(ranges)


class ClusterIPAllocator:
    kind = CHILD

    def __init__(self, store: Store, service_cidrs: list[str]) -> None:
        self.ranges = parse_service_ranges(service_cidrs)
        self.root = store
        self.store = store.child(CHILD)
        self._taken: set[str] | None = None  # this allocator's view; the store decides
        self._registered = False
        self._random = random.Random()

    def _register(self) -> None:
        if not self._registered:
            for r in self.ranges:
                registry.register(self.root, CHILD, r.cidr, "-", "service-cidr")
            self._registered = True

    def allocate(self, ip: str | Address | None = None, owner: str = "", family: int | None = None) -> Address:
        """`ip` if it is free and in range; otherwise a free address (of `family`, default the first range's)."""
        self._register()
        stored_owner = owner or ANONYMOUS
        if ip is not None:
            return self._allocate_specific(ip, stored_owner)
        r = self._range_of_family(family)
        if self._taken is None:
            self._taken = self.store.keys()
        for round_ in range(MAX_ROUNDS):
            if round_:
                self._taken = self.store.keys()
            found, contended = self._scan(r, stored_owner, self._taken)
            if found is not None:
                return found
            if round_ and not contended:
                raise RangeFull(f"service-cidr {r.cidr}: no free address left ({r.size} allocated)")
        raise StoreUnavailable(f"service-cidr {r.cidr}: every free address was taken by others first; try again")

    def _range_of_family(self, family: int | None) -> ServiceRange:
        if family is None:
            return self.ranges[0]
        for r in self.ranges:
            if r.cidr.version == family:
                return r
        raise IPAMError(f"family: no IPv{family} service-cidr is configured")

    def _allocate_specific(self, raw: str | Address, owner: str) -> Address:
        ip = self._parse_ip(raw)
        if not self.store.reserve(str(ip), owner):
            held = self.store.owner(str(ip))
            raise AlreadyAllocated(f"ip: {ip} is already allocated" + (f" (to {held})" if held else ""))
        return ip

    def _parse_ip(self, raw: str | Address) -> Address:
        try:
            ip = ipaddress.ip_address(raw)
        except ValueError:
            raise IPAMError(f"ip: {raw!r} is not an IP address") from None
        if not any(r.index(ip) is not None for r in self.ranges):
            cidrs = ", ".join(str(r.cidr) for r in self.ranges)
            raise IPAMError(f"ip: {ip} is outside the service-cidr ({cidrs}) or its network/broadcast address")
        return ip

    def _scan(self, r: ServiceRange, owner: str, taken: set[str]) -> tuple[Address | None, bool]:
        """Claim a free address as the view `taken` sees it (and mark it there); (address,
        False), or (None, whether others won enough claims that the view is worth re-reading)."""
        lost = 0
        for lo, hi in r.bands():
            for index in self._candidates(lo, hi):
                key = str(r.address(index))
                if key in taken:
                    continue
                taken.add(key)
                if self.store.reserve(key, owner):
                    return r.address(index), False
                lost += 1
                if lost >= REFRESH_AFTER:
                    return None, True
        return None, lost > 0

    def _candidates(self, lo: int, hi: int) -> Iterator[int]:
        """Random indices of [lo, hi) first, then all of them from a random start.

        Independent random picks keep concurrent allocators apart; a linear run from a
        random start would follow another allocator's run and lose claim after claim.
        """
        for _ in range(RANDOM_PICKS):
            yield self._random.randrange(lo, hi)
        start = self._random.randrange(lo, hi)
        for step in range(hi - lo):
            yield lo + (start - lo + step) % (hi - lo)

    def release(self, ip: str | Address) -> str | None:
        """Free `ip`; return who held it ("" for no owner), or None when it was not held."""
        ip = self._parse_ip(ip)
        owner = self.store.owner(str(ip))  # only for the report: releasing a free address is no error
        self.store.release(str(ip))
        if self._taken is not None:
            self._taken.discard(str(ip))
        return None if owner is None else ("" if owner == ANONYMOUS else owner)

    def list(self) -> dict[Address, str]:
        """Every allocated address and its owner ("" when allocated without one)."""
        held = {ipaddress.ip_address(k): ("" if o == ANONYMOUS else o) for k, o in self.store.items().items()}
        return dict(sorted(held.items(), key=lambda kv: (kv[0].version, kv[0])))

    def in_range(self, key: str) -> bool:
        """Whether a claimed key is a usable address of one of this allocator's ranges."""
        try:
            ip = ipaddress.ip_address(key)
        except ValueError:
            return False
        return any(r.index(ip) is not None for r in self.ranges)

    def usage(self) -> builtins.list[RangeUsage]:  # `list` here is the method above
        held = [ipaddress.ip_address(k) for k in sorted(self.store.keys())]
        return [
            RangeUsage(CHILD, r.cidr, r.size, sum(1 for ip in held if r.index(ip) is not None), "addresses")
            for r in self.ranges
        ]
