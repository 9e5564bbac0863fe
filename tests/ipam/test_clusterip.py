"""ClusterIPs on both backends: KEP-3070 bands, specific addresses, full ranges, bad input,
and 8 processes x 500 allocations at once from one range."""

from __future__ import annotations

import ipaddress
import multiprocessing

import pytest

from ipam.clusterip import ClusterIPAllocator, ServiceRange
from ipam.errors import AlreadyAllocated, IPAMError, RangeFull
from ipam.store_url import open_store

PROCESSES, PER_PROCESS = 8, 500


def ip(text: str):
    return ipaddress.ip_address(text)


@pytest.mark.parametrize(
    ("cidr", "offset"),
    [("10.96.0.0/12", 256), ("10.96.0.0/24", 16), ("10.96.0.0/20", 256), ("10.96.0.0/28", 0), ("fd00::/108", 256)],
)
def test_the_static_band_is_kubernetes_offset(cidr, offset):
    assert ServiceRange(ipaddress.ip_network(cidr)).offset == offset


def test_dynamic_addresses_come_from_the_upper_band_first(store_url):
    alloc = ClusterIPAllocator(open_store(store_url), ["10.96.0.0/24"])
    got = [alloc.allocate(owner=f"svc-{i}") for i in range(254 - 16)]
    # 10.96.0.1 .. 10.96.0.16 are the lower band (offset 16): untouched until the upper is full.
    assert all(a >= ip("10.96.0.17") for a in got)
    assert len(set(got)) == len(got)
    lower = alloc.allocate(owner="spill")
    assert ip("10.96.0.1") <= lower <= ip("10.96.0.16")


def test_a_specific_address_is_given_once_and_only_inside_the_range(store_url):
    alloc = ClusterIPAllocator(open_store(store_url), ["10.96.0.0/12", "fd00:96::/108"])
    assert alloc.allocate("10.96.0.10", owner="kube-system/kube-dns") == ip("10.96.0.10")
    assert alloc.allocate("fd00:96::a", owner="kube-system/kube-dns") == ip("fd00:96::a")
    with pytest.raises(AlreadyAllocated, match=r"ip: 10\.96\.0\.10 is already allocated \(to kube-system/kube-dns\)"):
        alloc.allocate("10.96.0.10", owner="other")
    for bad in ("10.112.0.1", "10.96.0.0", "10.111.255.255", "fd00:96::", "fd00:96::f:ffff"):
        with pytest.raises(IPAMError, match=f"ip: {bad} is outside the service-cidr"):
            alloc.allocate(bad)
    with pytest.raises(IPAMError, match="ip: 'not-an-ip' is not an IP address"):
        alloc.allocate("not-an-ip")
    assert alloc.allocate(family=6).version == 6
    assert alloc.list()[ip("10.96.0.10")] == "kube-system/kube-dns"
    alloc.release("10.96.0.10")
    assert ip("10.96.0.10") not in alloc.list()
    assert alloc.allocate("10.96.0.10") == ip("10.96.0.10")


def test_a_full_range_is_a_clear_error_never_a_duplicate(store_url):
    alloc = ClusterIPAllocator(open_store(store_url), ["10.96.0.0/28"])
    got = {alloc.allocate() for _ in range(14)}
    assert got == {ip(f"10.96.0.{i}") for i in range(1, 15)}  # never .0 (network) or .15 (broadcast)
    other = ClusterIPAllocator(open_store(store_url), ["10.96.0.0/28"])  # another client's view
    for a in (alloc, other):
        with pytest.raises(RangeFull, match=r"service-cidr 10\.96\.0\.0/28: no free address left"):
            a.allocate()
    alloc.release("10.96.0.7")
    assert other.allocate() == ip("10.96.0.7")


@pytest.mark.parametrize(
    ("cidrs", "message"),
    [
        (["10.96.0.0/33"], "service-cidr: '10.96.0.0/33' is not a CIDR"),
        (["10.96.0.1/12"], "service-cidr: '10.96.0.1/12' is not a CIDR"),
        (["10.96.0.0/31"], "service-cidr: 10.96.0.0/31 is too small"),
        (["fd00::/64"], "service-cidr: fd00::/64 is larger than /108"),
        (["10.96.0.0/12", "10.0.0.0/24"], "service-cidr: two CIDRs of the same IP family"),
        ([], "service-cidr: give one or two CIDRs"),
    ],
)
def test_bad_service_cidr_is_refused_naming_it(tmp_path, cidrs, message):
    with pytest.raises(IPAMError, match=message):
        ClusterIPAllocator(open_store(f"file:{tmp_path}/s"), cidrs)


def _allocate_many(url: str, cidr: str, worker: int, count: int, barrier, out) -> None:
    alloc = ClusterIPAllocator(open_store(url), [cidr])
    barrier.wait()
    out.put((worker, [str(alloc.allocate(owner=f"w{worker}-{i}")) for i in range(count)]))


@pytest.mark.slow
def test_eight_processes_allocate_4000_distinct_addresses_at_once(store_url):
    cidr = "10.100.0.0/20"  # 4094 usable addresses
    ctx = multiprocessing.get_context("fork")
    barrier, out = ctx.Barrier(PROCESSES), ctx.Queue()
    procs = [
        ctx.Process(target=_allocate_many, args=(store_url, cidr, w, PER_PROCESS, barrier, out))
        for w in range(PROCESSES)
    ]
    for p in procs:
        p.start()
    try:
        results = dict(out.get(timeout=120) for _ in procs)
    finally:
        for p in procs:
            p.join(timeout=30)
            if p.is_alive():
                p.kill()
                p.join()
    assert all(p.exitcode == 0 for p in procs)
    handed_out = [(a, f"w{w}-{i}") for w, addrs in results.items() for i, a in enumerate(addrs)]
    addresses = [a for a, _ in handed_out]
    assert len(addresses) == PROCESSES * PER_PROCESS
    assert len(set(addresses)) == len(addresses), "an address was handed out twice"
    view = ClusterIPAllocator(open_store(store_url), [cidr])
    # The range reports exactly what was handed out, each to the one who got it.
    assert {str(a): o for a, o in view.list().items()} == dict(handed_out)
    [usage] = view.usage()
    assert (usage.size, usage.used, usage.free) == (4094, 4000, 94)
