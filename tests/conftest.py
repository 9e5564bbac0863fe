"""Shared fixtures: namespaces that never outlive a test, and the CNI plugins installed the
way a runtime finds them."""

from __future__ import annotations

import os
import shutil

import pytest

from tests import netns as nsmod

REFERENCE_PLUGINS = "/usr/lib/cni"


def pytest_collection_modifyitems(config, items):
    # the unit tier (tracer tables, renderers, model) runs anywhere; only the integration
    # tier builds namespaces
    if os.geteuid() != 0 and any(item.get_closest_marker("integration") for item in items):
        pytest.exit("podnet's integration tests build real namespaces and need root "
                    "(select the unit tier with -m 'not integration')", returncode=2)  # fmt: skip


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
def cni_client() -> str:
    path = shutil.which("cni-client") or "/var/tmp/podnet-tools/cni-client"
    if not os.access(path, os.X_OK):
        pytest.fail("cni-client is not installed: run `make install` (it builds ../shared/tools/cni-client)")
    return path


def pytest_sessionfinish(session, exitstatus):
    left = nsmod.leftovers()
    if left:
        for name in left:
            nsmod.destroy(nsmod.Namespace(name))
        session.exitstatus = 1
        print(f"\nLEAK: namespaces outlived their tests: {', '.join(left)}")
