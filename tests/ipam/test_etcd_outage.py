"""etcd killed (SIGKILL) and restarted in the middle of a run of allocations."""

from __future__ import annotations

import threading
import time

import pytest

from ipam.clusterip import ClusterIPAllocator
from ipam.errors import StoreUnavailable
from ipam.store_url import open_store
from ipam.subnets import NodeSubnetAllocator
from tests.ipam.conftest import etcd_url

pytestmark = pytest.mark.integration  # a real etcd, killed and restarted

CIDR = "10.120.0.0/16"


class Worker(threading.Thread):
    """Allocates ClusterIPs with unique owners until told to stop; remembers what was
    acknowledged and what failed."""

    def __init__(self, url: str, name: str) -> None:
        super().__init__(name=name, daemon=True)
        self.alloc = ClusterIPAllocator(open_store(url), [CIDR])
        self.acked: dict[str, str] = {}
        self.errors: list[Exception] = []
        self.stop = threading.Event()

    def run(self) -> None:
        i = 0
        while not self.stop.is_set():
            owner = f"{self.name}-{i}"
            i += 1
            try:
                self.acked[str(self.alloc.allocate(owner=owner))] = owner
            except Exception as e:  # judged by the test: all must be "try again"
                self.errors.append(e)
                time.sleep(0.02)


def wait_for(predicate, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_allocations_survive_an_etcd_crash_and_none_is_given_twice(etcd):
    url = etcd_url(etcd)
    workers = [Worker(url, f"w{i}") for i in range(3)]
    for w in workers:
        w.start()
    try:
        wait_for(lambda: all(len(w.acked) >= 30 for w in workers))
        etcd.kill()
        acked_before = sum(len(w.acked) for w in workers)
        wait_for(lambda: all(len(w.errors) >= 3 for w in workers))
        during = sum(len(w.acked) for w in workers)
        etcd.start()
        wait_for(lambda: sum(len(w.acked) for w in workers) >= during + 90)
    finally:
        for w in workers:
            w.stop.set()
        for w in workers:
            w.join(timeout=30)
    errors = [e for w in workers for e in w.errors]
    assert errors and all(isinstance(e, StoreUnavailable) and "try again" in str(e) for e in errors), errors[:3]
    # At most the calls in flight at the kill were acknowledged afterwards.
    assert during - acked_before <= len(workers)
    acked = [(ip, owner) for w in workers for ip, owner in w.acked.items()]
    assert len({ip for ip, _ in acked}) == len(acked) == sum(len(w.acked) for w in workers)
    held = {str(ip): owner for ip, owner in ClusterIPAllocator(open_store(url), [CIDR]).list().items()}
    # Every acknowledged allocation is still there, held by the one it was given to.
    assert all(held.get(ip) == owner for ip, owner in acked)
    # Anything else held is a claim whose acknowledgement the crash swallowed: owned by a
    # call that failed, never by someone who was told it got another address.
    unacked = set(held) - {ip for ip, _ in acked}
    assert len(unacked) <= len(workers)


def test_a_node_lease_outlives_a_short_etcd_restart(etcd):
    url = etcd_url(etcd)
    alloc = NodeSubnetAllocator(open_store(url), ["10.244.0.0/16"], 24)
    subnet = alloc.acquire("node-a", ttl=10)
    etcd.kill()
    with pytest.raises(StoreUnavailable, match="try again"):
        alloc.renew("node-a")
    etcd.start()
    assert alloc.renew("node-a") == subnet
    assert NodeSubnetAllocator(open_store(url), ["10.244.0.0/16"], 24).acquire("node-a", ttl=10) == subnet
