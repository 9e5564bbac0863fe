"""Node subnet leases on both backends: stable per node, dual stack, TTL expiry, bad input."""

from __future__ import annotations

import ipaddress
import time

import pytest

from ipam.errors import IPAMError, RangeFull
from ipam.store_url import open_store
from ipam.subnets import NodeSubnetAllocator

V4, V6 = "10.244.0.0/16", "fd00:10:244::/56"


def net(text: str):
    return ipaddress.ip_network(text)


def test_a_node_gets_the_same_subnets_when_it_asks_again(store_url):
    alloc = NodeSubnetAllocator(open_store(store_url), [V4, V6], [24, 64])
    first = alloc.acquire("node-a")
    assert first == [net("10.244.0.0/24"), net("fd00:10:244::/64")]
    second = alloc.acquire("node-b")
    assert second == [net("10.244.1.0/24"), net("fd00:10:244:1::/64")]
    # Asked again, from a fresh allocator over a fresh connection (podnet restarted).
    again = NodeSubnetAllocator(open_store(store_url), [V4, V6], [24, 64])
    assert again.acquire("node-a") == first
    assert again.list() == {"node-a": first, "node-b": second}
    assert [(u.size, u.used) for u in again.usage()] == [(256, 2), (256, 2)]


def test_release_frees_the_subnets_and_the_next_node_gets_a_later_one(store_url):
    alloc = NodeSubnetAllocator(open_store(store_url), [V4], 24)
    a = alloc.acquire("node-a")
    alloc.acquire("node-b")
    alloc.release("node-a")
    alloc.release("node-a")  # already gone: fine
    assert "node-a" not in alloc.list()
    # The freed subnet is reused last: a late packet for the old node finds nobody.
    assert alloc.acquire("node-c") == [net("10.244.2.0/24")]
    assert alloc.acquire("node-c") != a


def test_a_full_cluster_cidr_is_a_clear_error_and_changes_nothing(store_url):
    alloc = NodeSubnetAllocator(open_store(store_url), ["10.10.0.0/22", "fd00:1::/63"], [24, 64])
    for i in range(2):
        alloc.acquire(f"n{i}")
    before = alloc.list()
    with pytest.raises(RangeFull, match=r"cluster-cidr fd00:1::/63: no free /64"):
        alloc.acquire("n2")  # IPv4 has room (4 subnets), IPv6 does not (2): nothing is kept
    assert alloc.list() == before


def test_a_lease_not_renewed_expires_and_a_live_node_keeps_its_subnet(store_url):
    small = "10.10.0.0/23"  # room for two nodes
    alloc = NodeSubnetAllocator(open_store(store_url), [small], 24)
    dead = alloc.acquire("node-dead", ttl=2)
    live = alloc.acquire("node-live", ttl=2)
    with alloc.keep_alive("node-live", ttl=2) as keeper:
        time.sleep(3.2)
        assert keeper.errors == []
        # Restarted podnet on the live node asks again: same subnet, lease taken over.
        restarted = NodeSubnetAllocator(open_store(store_url), [small], 24)
        assert restarted.acquire("node-live", ttl=2) == live
        deadline = time.monotonic() + 10  # etcd revokes expired leases in a periodic sweep
        while "node-dead" in restarted.list() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert restarted.list() == {"node-live": live}
        assert restarted.renew("node-dead") == []
        # The dead node's subnet is free again: a new node gets it.
        assert restarted.acquire("node-new") == dead
        with pytest.raises(RangeFull):
            restarted.acquire("node-one-too-many")


def test_a_second_allocator_with_another_mask_size_is_refused(store_url):
    NodeSubnetAllocator(open_store(store_url), [V4], 24).acquire("n1")
    with pytest.raises(IPAMError, match="node-mask-size: 25 differs from 24"):
        NodeSubnetAllocator(open_store(store_url), [V4], 25).acquire("n2")


@pytest.mark.parametrize(
    ("cidrs", "masks", "message"),
    [
        (["10.244.0.0/33"], 24, "cluster-cidr: '10.244.0.0/33' is not a CIDR"),
        (["banana"], 24, "cluster-cidr: 'banana' is not a CIDR"),
        (["10.244.1.0/16"], 24, "cluster-cidr: '10.244.1.0/16' is not a CIDR \\(.*host bits"),
        (["10.244.0.0/16"], 8, "node-mask-size: /8 is larger than cluster-cidr 10.244.0.0/16"),
        (["10.244.0.0/16"], 31, "node-mask-size: /31 leaves no room for pods"),
        (["10.0.0.0/8"], 28, "node-mask-size: /28 cuts cluster-cidr 10.0.0.0/8 into more than 65536"),
        (["10.244.0.0/16"], "24", "node-mask-size: '24' is not an integer"),
        (["10.244.0.0/16", "10.245.0.0/16"], 24, "cluster-cidr: two CIDRs of the same IP family"),
        ([V4, V6], [24], "node-mask-size: 1 sizes given for 2 cluster CIDRs"),
        ([], 24, "cluster-cidr: give one or two CIDRs"),
    ],
)
def test_bad_input_is_refused_naming_the_field(tmp_path, cidrs, masks, message):
    store = open_store(f"file:{tmp_path}/s")
    with pytest.raises(IPAMError, match=message):
        NodeSubnetAllocator(store, cidrs, masks)
    assert not (tmp_path / "s" / "node-subnets").exists()


@pytest.mark.parametrize(
    ("node", "ttl", "message"), [("", None, "node: ''"), ("a/b", None, "node:"), ("n", 0, "ttl: 0")]
)
def test_bad_node_or_ttl_is_refused(tmp_path, node, ttl, message):
    alloc = NodeSubnetAllocator(open_store(f"file:{tmp_path}/s"), [V4], 24)
    with pytest.raises(IPAMError, match=message):
        alloc.acquire(node, ttl=ttl)
    assert alloc.list() == {}
