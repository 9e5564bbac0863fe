"""Fixtures of the proxy's semantic suite: one namespace lab per test module (built once: it is
the slow part), reset between tests, and the proxy mode every semantic test runs under."""

from __future__ import annotations

import pytest

from tests.support import proxy_lab as labmod

# Every semantic test runs once per mode; nftables and ipvs join this list when they exist.
PROXY_MODES = ["iptables", "nftables"]


@pytest.fixture(scope="module")
def lab_module():
    lab = labmod.build(servers_sctp=labmod.sctp_supported())
    try:
        yield lab
    finally:
        labmod.destroy(lab)


@pytest.fixture(params=PROXY_MODES)
def mode(request) -> str:
    return request.param


@pytest.fixture
def lab(lab_module, tmp_path):
    lab_module.reset(str(tmp_path / "objects"))
    yield lab_module
    lab_module.reset(str(tmp_path / "objects"))
