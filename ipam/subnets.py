"""Node subnets: each node leases one pod subnet per family out of the cluster CIDR(s).

As flannel's subnet leases and kube-controller-manager's node IPAM: the cluster CIDR
(10.244.0.0/16) is cut into subnets of the node mask size (/24); a node that asks again
gets the subnet it holds; a lease with a TTL must be renewed (keep_alive) or its subnet
goes back to the pool. New subnets are taken after the last one handed out, so a subnet
just freed by a dead node is reused as late as possible.
"""

from __future__ import annotations

import builtins
import ipaddress
import threading
from collections.abc import Iterator
from dataclasses import dataclass

from ipam import registry
from ipam.errors import IPAMError, RangeFull
from ipam.ranges import Network
from ipam.store import Store
from ipam.usage import RangeUsage

CHILD = "node-subnets"
MAX_SPLIT_BITS = 16  # at most 65536 node subnets per cluster CIDR, as kube-controller-manager


@dataclass(frozen=True)
class ClusterRange:
    cidr: Network
    node_prefix: int

    @property
    def count(self) -> int:
        return 1 << (self.node_prefix - self.cidr.prefixlen)

    def subnet(self, index: int) -> Network:
        size = 1 << (self.cidr.max_prefixlen - self.node_prefix)
        return ipaddress.ip_network((int(self.cidr.network_address) + index * size, self.node_prefix))

    def index(self, subnet: Network) -> int | None:
        if subnet.version != self.cidr.version or subnet.prefixlen != self.node_prefix:
            return None
        # Same family, and no larger than the CIDR: inside it exactly when its first address is.
        if subnet.network_address not in self.cidr:
            return None
        return (int(subnet.network_address) - int(self.cidr.network_address)) >> (
            self.cidr.max_prefixlen - self.node_prefix
        )

    def candidates(self, after: Network | None) -> Iterator[Network]:
        """Every node subnet once, starting after `after` and wrapping around."""
        start = 0
        if after is not None and (i := self.index(after)) is not None:
            start = i + 1
        for step in range(self.count):
            yield self.subnet((start + step) % self.count)


def parse_cluster_ranges(cluster_cidrs: list[str], node_mask_sizes: list[int] | int) -> tuple[ClusterRange, ...]:
    if isinstance(cluster_cidrs, str) or not cluster_cidrs:
        raise IPAMError("cluster-cidr: give one or two CIDRs (one per IP family)")
    if not isinstance(node_mask_sizes, list | tuple):
        node_mask_sizes = [node_mask_sizes] * len(cluster_cidrs)
    if len(node_mask_sizes) != len(cluster_cidrs):
        raise IPAMError(
            f"node-mask-size: {len(node_mask_sizes)} sizes given for {len(cluster_cidrs)} cluster CIDRs "
            "(give one size, or one per cluster CIDR)"
        )
    ranges = tuple(_parse_one(c, m) for c, m in zip(cluster_cidrs, node_mask_sizes, strict=True))
    families = [r.cidr.version for r in ranges]
    if len(set(families)) != len(families):
        raise IPAMError("cluster-cidr: two CIDRs of the same IP family (give one per family)")
    return ranges


def _parse_one(raw: str, mask) -> ClusterRange:
    try:
        cidr = ipaddress.ip_network(raw)
    except ValueError as e:
        raise IPAMError(f"cluster-cidr: {raw!r} is not a CIDR ({e})") from None
    except TypeError:
        raise IPAMError(f"cluster-cidr: {raw!r} is not a CIDR") from None
    if isinstance(mask, bool) or not isinstance(mask, int):
        raise IPAMError(f"node-mask-size: {mask!r} is not an integer")
    # A node subnet must hold a gateway and at least one pod next to its network address.
    largest = cidr.max_prefixlen - (2 if cidr.version == 4 else 1)
    if mask < cidr.prefixlen:
        raise IPAMError(f"node-mask-size: /{mask} is larger than cluster-cidr {cidr}")
    if mask > largest:
        raise IPAMError(f"node-mask-size: /{mask} leaves no room for pods (at most /{largest} for IPv{cidr.version})")
    if mask - cidr.prefixlen > MAX_SPLIT_BITS:
        raise IPAMError(
            f"node-mask-size: /{mask} cuts cluster-cidr {cidr} into more than {1 << MAX_SPLIT_BITS} subnets "
            f"(use a size of at most /{cidr.prefixlen + MAX_SPLIT_BITS})"
        )
    return ClusterRange(cidr, mask)


def _check_node(node: str) -> None:
    if not isinstance(node, str) or not node or any(c in node for c in "\n\x1e/") or len(node) > 253:
        raise IPAMError(f"node: {node!r} is not a node name (1-253 characters, no '/' or newline)")


class NodeSubnetAllocator:
    kind = CHILD

    def __init__(self, store: Store, cluster_cidrs: list[str], node_mask_sizes: list[int] | int) -> None:
        self.ranges = parse_cluster_ranges(cluster_cidrs, node_mask_sizes)
        self.root = store
        self.store = store.child(CHILD)
        self._registered = False

    def _register(self) -> None:
        if not self._registered:
            for r in self.ranges:
                registry.register(self.root, CHILD, r.cidr, str(r.node_prefix), "node-mask-size")
            self._registered = True

    def acquire(self, node: str, ttl: int | None = None) -> list[Network]:
        """The node's subnet in each cluster CIDR: the one it holds, else a free one."""
        _check_node(node)
        if ttl is not None and (isinstance(ttl, bool) or not isinstance(ttl, int) or ttl < 1):
            raise IPAMError(f"ttl: {ttl!r} is not a positive number of seconds")
        self._register()
        with self.store.lock():
            mine = [ipaddress.ip_network(k) for k in self.store.held_by(node)]
            held: set[str] | None = None  # read only when a new subnet is needed
            got: list[Network] = []
            new: list[Network] = []
            try:
                for r in self.ranges:
                    subnet = self._held_in(r, mine)
                    if subnet is None or not self.store.renew(str(subnet)):
                        held = set(self.store.keys()) if held is None else held
                        subnet = self._take(r, node, ttl, held)
                        new.append(subnet)
                    got.append(subnet)
            except Exception:
                for subnet in new:
                    self.store.release(str(subnet))
                raise
            return got

    def _held_in(self, r: ClusterRange, mine: list[Network]) -> Network | None:
        return next((s for s in mine if r.index(s) is not None), None)

    def _take(self, r: ClusterRange, node: str, ttl: int | None, held: set[str]) -> Network:
        pool = str(r.cidr).replace("/", "_")
        last = self.store.last_reserved(pool)
        after = ipaddress.ip_network(last) if last else None
        for subnet in r.candidates(after):
            key = str(subnet)
            if key not in held and self.store.reserve(key, node, ttl):
                self.store.set_last_reserved(pool, key)
                return subnet
        raise RangeFull(f"cluster-cidr {r.cidr}: no free /{r.node_prefix} node subnet left ({r.count} in use)")

    def renew(self, node: str) -> list[Network]:
        """Restart the node's leases; the subnets still held (none once they expired)."""
        _check_node(node)
        with self.store.lock():
            mine = [ipaddress.ip_network(k) for k in self.store.held_by(node)]
            return sorted((s for s in mine if self.store.renew(str(s))), key=_order)

    def release(self, node: str) -> list[str]:
        """Free NODE's subnets; return the ones it held (none is no error)."""
        _check_node(node)
        with self.store.lock():
            return self.store.release_owner(node)

    def list(self) -> dict[str, list[Network]]:
        out: dict[str, list[Network]] = {}
        for key, node in self.store.items().items():
            out.setdefault(node, []).append(ipaddress.ip_network(key))
        return {node: sorted(subnets, key=_order) for node, subnets in sorted(out.items())}

    def in_range(self, key: str) -> bool:
        """Whether a claimed key is a node subnet of one of this allocator's ranges."""
        try:
            subnet = ipaddress.ip_network(key)
        except ValueError:
            return False
        return any(r.index(subnet) is not None for r in self.ranges)

    def usage(self) -> builtins.list[RangeUsage]:  # `list` here is the method above
        held = [ipaddress.ip_network(k) for k in sorted(self.store.keys())]
        return [
            RangeUsage(CHILD, r.cidr, r.count, sum(1 for s in held if r.index(s) is not None), f"/{r.node_prefix}")
            for r in self.ranges
        ]

    def keep_alive(self, node: str, ttl: int) -> KeepAlive:
        """A thread renewing the node's leases every ttl/3 seconds, until stopped."""
        return KeepAlive(self, node, ttl)


def _order(n: Network) -> tuple[int, Network]:
    return (n.version, n)


class KeepAlive:
    """Renews a node's subnet leases while the node lives; a context manager."""

    def __init__(self, allocator: NodeSubnetAllocator, node: str, ttl: int) -> None:
        self.allocator, self.node = allocator, node
        self.interval = max(ttl / 3, 0.2)
        self.errors: list[Exception] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"podnet-keepalive-{node}", daemon=True)

    def start(self) -> KeepAlive:
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.allocator.renew(self.node)
            except IPAMError as e:  # etcd away for a moment: the lease outlives a few misses
                self.errors.append(e)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def __enter__(self) -> KeepAlive:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
