"""podnet-ipam's configuration (the netconf's "ipam" object), parsed once into values.

In the spirit of host-local: "ranges" (a list of range sets), or the older single-range
form ("subnet", "rangeStart", "rangeEnd", "gateway"); "routes"; "dataDir"; and podnet's own
"store" ("file:DIR" or "etcd://HOST:PORT/PREFIX"): where the claims live when not in dataDir.
"""

from __future__ import annotations

import ipaddress
import os

from ipam.errors import IPAMError
from ipam.ranges import RangeSet, parse_range_set
from ipam.store_url import StoreURL, parse_store_url
from ipam.value import Value

TYPE_CHECKING = False  # the type checker treats this name as true; typing is not imported
if TYPE_CHECKING:
    from typing import Final

DEFAULT_DATA_DIR = "/var/lib/podnet/networks"


# A plain class, not a dataclass: see the note above ipam.ranges.Range.
class RouteConf(Value):
    """A route the IPAM config asks the pod to have."""

    __slots__ = ("dst", "gw")

    def __init__(
        self,
        dst: ipaddress.IPv4Network | ipaddress.IPv6Network,
        gw: ipaddress.IPv4Address | ipaddress.IPv6Address | None = None,
    ) -> None:
        self.dst: Final = dst
        self.gw: Final = gw

    def to_json(self) -> dict:
        out = {"dst": str(self.dst)}
        if self.gw is not None:
            out["gw"] = str(self.gw)
        return out


# A plain class, not a dataclass: see the note above ipam.ranges.Range.
class IPAMConf(Value):
    """The IPAM section of a netconf, parsed and validated."""

    __slots__ = ("network", "range_sets", "routes", "data_dir", "store")

    def __init__(
        self,
        network: str,
        range_sets: tuple[RangeSet, ...],
        routes: tuple[RouteConf, ...],
        data_dir: str,
        store: StoreURL | None = None,
    ) -> None:
        self.network: Final = network
        self.range_sets: Final = range_sets
        self.routes: Final = routes
        self.data_dir: Final = data_dir
        self.store: Final = store  # None: the pool directory under data_dir

    @property
    def pool_dir(self) -> str:
        return os.path.join(self.data_dir, self.network)

    @property
    def pool_path(self) -> tuple[str, ...]:
        """The pool's place in a shared store: one per network and node range, so a node
        lists only its own claims and keeps its own allocation hint."""
        return ("pods", self.network, str(self.range_sets[0].ranges[0].subnet))


def parse_ipam(ipam: dict, network: str) -> IPAMConf:
    if "ranges" in ipam:
        raw_sets = ipam["ranges"]
        if not isinstance(raw_sets, list) or not raw_sets:
            raise IPAMError("ipam.ranges: not a non-empty list of range sets")
        range_sets = tuple(parse_range_set(s, f"ipam.ranges[{i}]") for i, s in enumerate(raw_sets))
    elif "subnet" in ipam:
        single = {k: ipam[k] for k in ("subnet", "rangeStart", "rangeEnd", "gateway") if k in ipam}
        range_sets = (parse_range_set([single], "ipam"),)
    else:
        raise IPAMError("ipam.ranges: missing (give ranges, or a subnet)")
    families = [s.version for s in range_sets]
    if len(set(families)) != len(families):
        raise IPAMError("ipam.ranges: two range sets of the same IP family (one per family)")
    for i, a in enumerate(range_sets):
        for b in range_sets[i + 1 :]:
            for ra in a.ranges:
                for rb in b.ranges:
                    if ra.subnet.overlaps(rb.subnet):
                        raise IPAMError(f"ipam.ranges: subnets {ra.subnet} and {rb.subnet} overlap")
    data_dir = ipam.get("dataDir", DEFAULT_DATA_DIR)
    if not isinstance(data_dir, str) or not os.path.isabs(data_dir):
        raise IPAMError(f"ipam.dataDir: {str(data_dir)[:80]!r} is not an absolute path")
    problem = path_problem(data_dir)
    if problem:
        raise IPAMError(f"ipam.dataDir: {problem}")
    store = parse_store_url(ipam["store"], "ipam.store") if ipam.get("store") is not None else None
    return IPAMConf(network, range_sets, parse_routes(ipam.get("routes", [])), data_dir, store)


MAX_PATH = 3800  # PATH_MAX (4096) less room for the network, the range and a claim's name


def path_problem(path: str) -> str:
    """Why `path` could never be a directory of ours ("" when it can): found here, so that a
    refusal names the field instead of the file system failing half-way."""
    if "\x00" in path:
        return "holds a NUL byte"
    try:
        encoded = path.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        return "holds characters that cannot be encoded (a lone surrogate)"
    if len(encoded) > MAX_PATH:
        return f"{len(encoded)} bytes long, more than {MAX_PATH}"
    if any(len(part) > 255 for part in encoded.split(b"/")):
        return "has a component longer than 255 bytes"
    return ""


def parse_routes(raw) -> tuple[RouteConf, ...]:
    if not isinstance(raw, list):
        raise IPAMError("ipam.routes: not a list")
    routes = []
    for i, r in enumerate(raw):
        if not isinstance(r, dict):
            raise IPAMError(f"ipam.routes[{i}]: not a JSON object")
        try:
            dst = ipaddress.ip_network(r.get("dst", ""), strict=False)
        except (ValueError, TypeError):
            raise IPAMError(f"ipam.routes[{i}].dst: {str(r.get('dst'))[:80]!r} is not a CIDR") from None
        gw = None
        if r.get("gw") is not None:
            try:
                gw = ipaddress.ip_address(r["gw"])
            except (ValueError, TypeError):
                raise IPAMError(f"ipam.routes[{i}].gw: {str(r['gw'])[:80]!r} is not an IP address") from None
            if getattr(gw, "scope_id", None) or gw.version != dst.version:
                raise IPAMError(f"ipam.routes[{i}].gw: {gw} is zone-scoped or not of the family of {dst}")
        routes.append(RouteConf(dst, gw))
    return tuple(routes)
