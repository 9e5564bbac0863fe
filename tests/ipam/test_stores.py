"""The Store contract, on every backend (local directory, etcd, memory)."""

from __future__ import annotations

import time

import pytest

from ipam.errors import IPAMError
from ipam.memory import MemoryStore
from ipam.store_url import open_store
from tests.ipam.conftest import etcd_url


@pytest.fixture(params=["file", pytest.param("etcd", marks=pytest.mark.integration), "memory"])
def store(request, tmp_path):
    if request.param == "memory":
        return MemoryStore()
    if request.param == "file":
        return open_store(f"file:{tmp_path}/s")
    return open_store(etcd_url(request.getfixturevalue("etcd_module")))


def test_claim_is_exclusive_and_released(store):
    assert store.reserve("10.0.0.2", "a\neth0")
    assert not store.reserve("10.0.0.2", "b\neth0")
    assert store.owner("10.0.0.2") == "a\neth0"
    assert store.reserve("10.0.0.0/24", "node-1")
    assert store.items() == {"10.0.0.2": "a\neth0", "10.0.0.0/24": "node-1"}
    assert store.keys() == {"10.0.0.2", "10.0.0.0/24"}
    assert store.held_by("a\neth0") == ["10.0.0.2"]
    store.release("10.0.0.2")
    assert store.held_by("a\neth0") == []
    store.release("10.0.0.2")  # already gone: no error
    assert store.owner("10.0.0.2") is None
    assert store.reserve("10.0.0.3", "node-1")
    assert sorted(store.held_by("node-1")) == ["10.0.0.0/24", "10.0.0.3"]
    assert sorted(store.release_owner("node-1")) == ["10.0.0.0/24", "10.0.0.3"]
    assert store.items() == {}
    assert store.held_by("node-1") == []


def test_owners_with_slashes_do_not_blur(store):
    assert store.reserve("10.96.0.10", "kube-system/dns")
    assert store.reserve("10.96.0.11", "kube-system")
    assert store.held_by("kube-system") == ["10.96.0.11"]
    assert store.release_owner("kube-system") == ["10.96.0.11"]
    assert store.items() == {"10.96.0.10": "kube-system/dns"}


def test_children_do_not_mix(store):
    a, b = store.child("node-subnets"), store.child("clusterips")
    assert a.reserve("10.0.0.1", "x")
    assert b.reserve("10.0.0.1", "y")
    assert (a.owner("10.0.0.1"), b.owner("10.0.0.1")) == ("x", "y")
    assert store.items() == {}
    assert store.child("node-subnets").items() == {"10.0.0.1": "x"}


def test_last_reserved_hint(store):
    assert store.last_reserved("0") is None
    store.set_last_reserved("0", "10.0.0.9")
    assert store.last_reserved("0") == "10.0.0.9"


def test_a_lease_expires_unless_renewed(store):
    with store.lock():
        assert store.reserve("10.244.1.0/24", "node-1", ttl=2)
        assert store.reserve("10.244.2.0/24", "node-2", ttl=2)
    start = time.monotonic()
    # node-1 renews every 0.5 s; node-2 never does. etcd sweeps expired leases every 0.5 s.
    while (node_2 := store.owner("10.244.2.0/24")) is not None or time.monotonic() - start < 2.5:
        elapsed = time.monotonic() - start
        assert elapsed < 10, "node-2's lease did not expire"
        if elapsed < 1.5:
            assert node_2 == "node-2", "expired before its TTL"
        time.sleep(0.5)
        assert store.renew("10.244.1.0/24")
    # node-2 is gone, and its key can be claimed again by someone else.
    assert store.items() == {"10.244.1.0/24": "node-1"}
    assert not store.renew("10.244.2.0/24")
    assert store.held_by("node-2") == []
    with store.lock():
        store.expire()
        assert store.reserve("10.244.2.0/24", "node-3", ttl=5)
    assert store.owner("10.244.2.0/24") == "node-3"
    assert store.renew("10.244.2.0/24")


def test_child_names_are_checked(store):
    with pytest.raises(IPAMError, match="child name"):
        store.child("")


@pytest.mark.parametrize(
    "url",
    ["etcd://", "etcd://host", "etcd://host:port/x", "etcd://h:99999/x", "file:relative/dir", "http://x:1", "", "x"],
)
def test_a_store_url_that_does_not_parse_is_refused_naming_it(url):
    with pytest.raises(IPAMError) as e:
        open_store(url)
    assert f"store: {url!r}" in str(e.value)


def test_store_url_forms(tmp_path, monkeypatch):
    assert open_store(f"file:{tmp_path}/a").directory == f"{tmp_path}/a"
    assert open_store(f"file://{tmp_path}/b").directory == f"{tmp_path}/b"
    s = open_store("etcd://127.0.0.1:2379/podnet/x/")
    assert (s.gateway.host, s.gateway.port, s.prefix) == ("127.0.0.1", 2379, "/podnet/x/")
    assert open_store("etcd://[::1]:2379").prefix == "/podnet/"
    monkeypatch.setenv("PODNET_STORE", f"file:{tmp_path}/env")
    assert open_store().directory == f"{tmp_path}/env"
