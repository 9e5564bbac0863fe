"""Address ranges in the shape of host-local's config: a range set is one or more ranges of
one family; an allocation takes one address from each range set (dual stack = two sets).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator

from ipam.errors import IPAMError
from ipam.value import Value

TYPE_CHECKING = False  # the type checker treats this name as true; typing is not imported
if TYPE_CHECKING:
    from typing import Final

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


# The value types here and in ipam.config, ipam.store_url and ipam.pool are plain classes,
# not dataclasses: the CNI plugin imports them, a runtime starts it once per pod, and
# importing dataclasses (inspect, and with it ast, dis, tokenize, enum...) costs that start
# more than all of podnet's own modules. `Final` keeps them frozen for the type checker,
# and ipam.value.Value gives them a dataclass's equality, hash and repr.
class Range(Value):
    """One range of a range set: a subnet and the addresses to hand out from it."""

    __slots__ = ("subnet", "start", "end", "gateway")

    def __init__(self, subnet: Network, start: Address, end: Address, gateway: Address | None) -> None:
        self.subnet: Final = subnet
        self.start: Final = start
        self.end: Final = end
        self.gateway: Final = gateway

    def __contains__(self, ip: Address) -> bool:
        # Addresses of one family compare; the ints keep the type checker sure of it.
        return ip.version == self.subnet.version and int(self.start) <= int(ip) <= int(self.end)

    def usable(self, ip: Address) -> bool:
        """In the range, and neither the network, the broadcast nor the gateway address."""
        if ip not in self or ip == self.gateway or ip == self.subnet.network_address:
            return False
        return not (self.subnet.version == 4 and ip == self.subnet.broadcast_address)

    @property
    def size(self) -> int:
        return int(self.end) - int(self.start) + 1


_BROADCAST = ipaddress.ip_network("255.255.255.255/32")
_THIS_NETWORK = ipaddress.ip_network("0.0.0.0/8")
_V4_MAPPED = ipaddress.ip_network("::ffff:0:0/96")


def never_pods(net: Network) -> str:
    """Why `net` can never hold pods ("" when it can): the kernel or every peer treats these
    addresses specially, and link-local holds the pods' own gateway (169.254.1.1)."""
    if net.prefixlen == 0:
        return "is every address, not a pod network"
    if getattr(net.network_address, "scope_id", None):
        return "is zone-scoped (%zone): pod addresses are global"
    if net.is_multicast:
        return "is multicast"
    if net.is_loopback:
        return "is loopback"
    if net.is_link_local:
        return "is link-local (the pods' gateway 169.254.1.1 and IPv6 link addresses live there)"
    if net.version == 4 and (net.overlaps(_BROADCAST) or net.overlaps(_THIS_NETWORK)):
        return "holds the broadcast or 'this network' (0.0.0.0/8) addresses"
    if net.version == 6 and net.overlaps(_V4_MAPPED):
        return "holds IPv4-mapped IPv6 addresses"
    if net.version == 6 and net.is_unspecified:
        return "is the unspecified address"
    return ""


def parse_range(raw: dict, field: str) -> Range:
    if not isinstance(raw, dict):
        raise IPAMError(f"{field}: not a JSON object")
    try:
        subnet = ipaddress.ip_network(raw.get("subnet", ""), strict=False)
    except (ValueError, TypeError):
        raise IPAMError(f"{field}.subnet: {str(raw.get('subnet'))[:80]!r} is not a CIDR subnet") from None
    problem = never_pods(subnet)
    if problem:
        raise IPAMError(f"{field}.subnet: {subnet} {problem}")
    # The network address, the broadcast (IPv4) and at least one more must fit.
    if subnet.num_addresses < (4 if subnet.version == 4 else 2):
        raise IPAMError(f"{field}.subnet: {subnet} is too small to hand out addresses")
    first = subnet.network_address + 1
    last = subnet.broadcast_address - 1 if subnet.version == 4 else subnet.broadcast_address

    def address(key: str, default):
        value = raw.get(key)
        if value is None:
            return default
        try:
            ip = ipaddress.ip_address(value)
        except (ValueError, TypeError):
            raise IPAMError(f"{field}.{key}: {str(value)[:80]!r} is not an IP address") from None
        if getattr(ip, "scope_id", None):
            raise IPAMError(f"{field}.{key}: {ip} is zone-scoped")
        if ip not in subnet:
            raise IPAMError(f"{field}.{key}: {ip} is outside subnet {subnet}")
        return ip

    start = address("rangeStart", first)
    end = address("rangeEnd", last)
    if start > end:
        raise IPAMError(f"{field}: rangeStart {start} is after rangeEnd {end}")
    gateway = address("gateway", first)
    return Range(subnet, max(start, first), min(end, last), gateway)


class RangeSet(Value):
    """Ranges of one address family; a pod gets one address from the set."""

    __slots__ = ("ranges",)

    def __init__(self, ranges: tuple[Range, ...]) -> None:
        self.ranges: Final = ranges

    @property
    def version(self) -> int:
        return self.ranges[0].subnet.version

    def find(self, ip: Address) -> Range | None:
        for r in self.ranges:
            if ip in r:
                return r
        return None

    def candidates(self, after: Address | None) -> Iterator[tuple[Range, Address]]:
        """Every usable address once, starting just after `after` and wrapping around.

        Continuing after the last reserved address (rather than reusing the lowest free
        one) keeps a just-released address out of use for as long as possible, so a
        late packet for a deleted pod does not reach its successor.
        """
        start_index, start_ip = 0, self.ranges[0].start
        if after is not None:
            for i, r in enumerate(self.ranges):
                if after in r:
                    start_index, start_ip = i, after + 1
                    if int(start_ip) > int(r.end):
                        start_index = (i + 1) % len(self.ranges)
                        start_ip = self.ranges[start_index].start
                    break
        n = len(self.ranges)
        for step in range(n + 1):
            r = self.ranges[(start_index + step) % n]
            if step == 0:
                lo, hi = start_ip, r.end
            elif step == n:
                lo, hi = r.start, start_ip - 1
            else:
                lo, hi = r.start, r.end
            ip = lo
            while int(ip) <= int(hi):
                if r.usable(ip):
                    yield r, ip
                ip += 1

    @property
    def size(self) -> int:
        return sum(r.size for r in self.ranges)


def parse_range_set(raw, field: str) -> RangeSet:
    if not isinstance(raw, list) or not raw:
        raise IPAMError(f"{field}: not a non-empty list of ranges")
    ranges = tuple(parse_range(r, f"{field}[{i}]") for i, r in enumerate(raw))
    if len({r.subnet.version for r in ranges}) != 1:
        raise IPAMError(f"{field}: mixes IPv4 and IPv6 ranges (use one range set per family)")
    for i, a in enumerate(ranges):
        for b in ranges[i + 1 :]:
            if int(a.start) <= int(b.end) and int(b.start) <= int(a.end):
                raise IPAMError(f"{field}: ranges {a.start}-{a.end} and {b.start}-{b.end} overlap")
    return RangeSet(ranges)
