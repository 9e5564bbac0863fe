"""IPAM fixtures: a real etcd per test (or per module), and store URLs for both backends."""

from __future__ import annotations

import uuid

import pytest

from tests.support.etcd_server import EtcdServer


def _start(tmp_path) -> EtcdServer:
    for attempt in range(3):  # a free port can be taken by someone else between probe and bind
        server = EtcdServer(str(tmp_path / f"etcd-data-{attempt}"))
        try:
            server.start()
            return server
        except RuntimeError:
            server.stop()
            last = server
    raise RuntimeError(f"etcd would not start: {last.log_tail()}")


@pytest.fixture
def etcd(tmp_path):
    """A fresh etcd for one test, always stopped afterwards."""
    server = _start(tmp_path)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def etcd_module(tmp_path_factory):
    """One etcd shared by a module's tests (each test uses its own key prefix)."""
    server = _start(tmp_path_factory.mktemp("etcd"))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(params=["file", pytest.param("etcd", marks=pytest.mark.integration)])
def store_url(request, tmp_path):
    """A store URL of each backend, empty (the etcd one runs a real etcd: integration tier)."""
    if request.param == "file":
        return f"file:{tmp_path / 'store'}"
    return etcd_url(request.getfixturevalue("etcd_module"))


def etcd_url(server: EtcdServer) -> str:
    """A store URL on `server` under a prefix no other test uses."""
    return f"etcd://127.0.0.1:{server.client_port}/t-{uuid.uuid4().hex[:12]}"
