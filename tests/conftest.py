"""Shared fixtures and the two tiers.

The unit tier (`pytest -m "not integration"`) needs no root, no namespace and no kernel state,
and runs as an ordinary user. Tests marked `integration` build real namespaces, links, rules
and etcd servers; without root they are skipped, saying so. A test that asks for a fixture of
that kind without the marker is a collection error, so the tiers cannot drift apart."""

from __future__ import annotations

import os

import pytest

from tests.support import netns as nsmod
from tests.support.cni_runtime import REFERENCE_PLUGINS, DriverMissing, driver_path

IS_ROOT = os.geteuid() == 0

# Fixtures that need root or kernel state: any test that uses one (directly or through another
# fixture) must be marked integration.
INTEGRATION_FIXTURES = frozenset({"netns", "etcd", "etcd_module", "make_lab", "lab_module", "cni_driver"})

NOT_ROOT = "integration test: needs root (namespaces, links, rules, etcd); run `make integration` as root"


def pytest_collection_modifyitems(config, items):
    unmarked = []
    for item in items:
        integration = item.get_closest_marker("integration") is not None
        if not integration and INTEGRATION_FIXTURES & set(item.fixturenames):
            unmarked.append(item.nodeid)
        if integration and not IS_ROOT:
            item.add_marker(pytest.mark.skip(reason=NOT_ROOT))
    if unmarked:
        raise pytest.UsageError(
            "tests that use namespaces, etcd or the CNI driver must be marked integration:\n  " + "\n  ".join(unmarked)
        )


@pytest.fixture
def netns():
    """A factory of fresh namespaces (lo up); all are removed when the test ends."""
    made: list[nsmod.Namespace] = []

    def make(prefix: str = "pnt") -> nsmod.Namespace:
        ns = nsmod.create(prefix)
        made.append(ns)
        return ns

    yield make
    for ns in reversed(made):
        nsmod.destroy(ns)


@pytest.fixture(scope="session")
def cni_bin(tmp_path_factory) -> str:
    """podnet-cni and podnet-ipam installed by `podnet install-cni` into a private bin dir."""
    from cni import install

    bin_dir = str(tmp_path_factory.mktemp("cni-bin"))
    install.write_launchers(bin_dir)
    return bin_dir


@pytest.fixture(scope="session")
def cni_path(cni_bin) -> str:
    return f"{cni_bin}:{REFERENCE_PLUGINS}"


@pytest.fixture(scope="session")
def cni_driver() -> str:
    """podnet's libcni driver (tests/support/cnidriver), built by `make test-tools`."""
    try:
        return driver_path()
    except DriverMissing as e:
        pytest.fail(str(e))


def pytest_sessionfinish(session, exitstatus):
    if not nsmod.CREATED:
        return
    left = nsmod.leftovers()
    if left:
        for name in left:
            nsmod.destroy(nsmod.Namespace(name))
        session.exitstatus = 1
        print(f"\nLEAK: namespaces outlived their tests: {', '.join(left)}")
