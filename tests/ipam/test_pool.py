"""The host-local address policy, over the in-memory and the disk store."""

from __future__ import annotations

import ipaddress
import multiprocessing

import pytest

from ipam.config import parse_ipam
from ipam.disk import DiskStore
from ipam.errors import AlreadyAllocated, IPAMError, RangeFull
from ipam.memory import MemoryStore
from ipam.pool import AddressPool, owner_key


def pool_for(store, ranges) -> AddressPool:
    return AddressPool(store, parse_ipam({"ranges": ranges}, "net").range_sets)


@pytest.fixture(params=["memory", "disk"])
def store(request, tmp_path):
    return MemoryStore() if request.param == "memory" else DiskStore(str(tmp_path / "pool"))


def test_never_network_broadcast_or_gateway_and_continues_after_the_last(store):
    pool = pool_for(store, [[{"subnet": "10.1.0.0/29"}]])  # .1 gateway, .7 broadcast
    got = [str(pool.allocate(owner_key(f"c{i}", "eth0"))[0].ip) for i in range(5)]
    assert got == ["10.1.0.2", "10.1.0.3", "10.1.0.4", "10.1.0.5", "10.1.0.6"]
    with pytest.raises(RangeFull):
        pool.allocate(owner_key("c5", "eth0"))
    pool.release(owner_key("c1", "eth0"))  # frees .3
    pool.release(owner_key("c3", "eth0"))  # frees .5
    # allocation continues after the last reserved (.6): wraps to .3, not straight back to .5
    assert str(pool.allocate(owner_key("c6", "eth0"))[0].ip) == "10.1.0.3"


def test_one_allocation_per_owner_and_dual_stack(store):
    pool = pool_for(store, [[{"subnet": "10.1.0.0/24"}], [{"subnet": "fd00:1::/120"}]])
    first = pool.allocate(owner_key("c", "eth0"))
    assert [a.ip.version for a in first] == [4, 6]
    assert pool.allocate(owner_key("c", "eth0")) == first
    assert len(store.items()) == 2
    assert sorted(pool.release(owner_key("c", "eth0"))) == sorted(str(a.ip) for a in first)


def test_requested_address(store):
    pool = pool_for(store, [[{"subnet": "10.1.0.0/24"}]])
    want = ipaddress.ip_address("10.1.0.50")
    assert pool.allocate(owner_key("a", "eth0"), (want,))[0].ip == want
    with pytest.raises(AlreadyAllocated):
        pool.allocate(owner_key("b", "eth0"), (want,))
    with pytest.raises(IPAMError, match="10.2.0.1"):
        pool.allocate(owner_key("b", "eth0"), (ipaddress.ip_address("10.2.0.1"),))


def test_multiple_ranges_in_a_set_and_gc(store):
    pool = pool_for(store, [[{"subnet": "10.1.0.0/30"}, {"subnet": "10.2.0.0/30"}]])
    got = [str(pool.allocate(owner_key(f"c{i}", "eth0"))[0].ip) for i in range(2)]
    assert got == ["10.1.0.2", "10.2.0.2"]
    assert pool.gc({owner_key("c1", "eth0")}) == ["10.1.0.2"]
    assert store.keys() == {"10.2.0.2"}


@pytest.mark.parametrize(
    "ipam,field",
    [
        ({"ranges": [[{"subnet": "nope"}]]}, "ipam.ranges[0][0].subnet"),
        ({"ranges": [[{"subnet": "10.0.0.0/24", "rangeEnd": "10.0.0.300"}]]}, "rangeEnd"),
        ({"ranges": [[{"subnet": "10.0.0.0/24"}, {"subnet": "fd00::/64"}]]}, "mixes IPv4 and IPv6"),
        ({"ranges": [[{"subnet": "10.0.0.0/24"}], [{"subnet": "10.1.0.0/24"}]]}, "same IP family"),
        ({"ranges": [[{"subnet": "10.0.0.0/31"}]]}, "too small"),
        ({"ranges": [[{"subnet": "10.0.0.0/24", "rangeStart": "10.0.0.9", "rangeEnd": "10.0.0.2"}]]}, "after"),
        ({"subnet": "10.0.0.0/24", "routes": [{"dst": "x"}]}, "ipam.routes[0].dst"),
        ({"subnet": "10.0.0.0/24", "dataDir": "relative"}, "ipam.dataDir"),
        ({}, "ipam.ranges"),
    ],
)
def test_bad_config_names_the_field(ipam, field):
    with pytest.raises(IPAMError, match=field.replace("[", r"\[").replace("]", r"\]")):
        parse_ipam(ipam, "net")


def _allocate_many(directory: str, worker: int, count: int, out) -> None:
    pool = pool_for(DiskStore(directory), [[{"subnet": "10.8.0.0/22"}]])
    out.put([str(pool.allocate(owner_key(f"w{worker}-{i}", "eth0"))[0].ip) for i in range(count)])


@pytest.mark.slow
def test_disk_store_never_hands_one_address_out_twice_across_processes(tmp_path):
    directory = str(tmp_path / "pool")
    out = multiprocessing.Queue()
    procs = [multiprocessing.Process(target=_allocate_many, args=(directory, w, 100, out)) for w in range(6)]
    for p in procs:
        p.start()
    got = [ip for _ in procs for ip in out.get(timeout=60)]
    for p in procs:
        p.join()
    assert len(got) == 600 and len(set(got)) == 600
    assert DiskStore(directory).keys() == set(got)


def test_disk_claims_survive_reopening_and_bookkeeping_is_not_a_claim(tmp_path):
    directory = str(tmp_path / "pool")
    pool = pool_for(DiskStore(directory), [[{"subnet": "10.1.0.0/24"}]])
    a = pool.allocate(owner_key("c", "eth0"))[0]
    reopened = DiskStore(directory)
    assert reopened.items() == {str(a.ip): owner_key("c", "eth0")}
    assert reopened.last_reserved("0") == str(a.ip)
