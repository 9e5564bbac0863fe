"""Fixtures for the CNI plugin tests: a node namespace with an address, a runtime driving
plugins inside it, and conflists for podnet-cni + podnet-ipam."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.support.cni_runtime import REFERENCE_PLUGINS, Runtime

NODE_IP = "192.0.2.10"
LAUNCHERS = ("py-launcher", "c-frontdoor")


def podnet_conf(tmp_path, version: str = "1.0.0", ranges=None, **extra) -> dict:
    """One podnet-cni network config (not a list), with its IPAM data in tmp_path."""
    ranges = ranges or [[{"subnet": "10.88.0.0/24"}]]
    return {
        "cniVersion": version,
        "name": "podnet-test",
        "type": "podnet-cni",
        "ipam": {"type": "podnet-ipam", "ranges": ranges, "dataDir": str(tmp_path / "ipam")},
        **extra,
    }


def as_list(conf: dict, *chained: dict) -> dict:
    plugin = {k: v for k, v in conf.items() if k not in ("cniVersion", "name")}
    return {"cniVersion": conf["cniVersion"], "name": conf["name"], "plugins": [plugin, *chained]}


def allocations(tmp_path, network: str = "podnet-test") -> list[str]:
    d = tmp_path / "ipam" / network
    return sorted(p.name for p in d.iterdir() if not p.name.startswith(".")) if d.exists() else []


@pytest.fixture(scope="session")
def launcher_dirs(tmp_path_factory) -> dict[str, str]:
    """A bin dir per launcher kind: the Python launchers, and the compiled front door (with
    the Python launchers beside it, which it executes when no server listens)."""
    from cni import frontdoor, install

    python = str(tmp_path_factory.mktemp("cni-bin-py"))
    install.write_launchers(python)
    compiled = str(tmp_path_factory.mktemp("cni-bin-c"))
    installed = frontdoor.install_frontdoor(compiled)
    assert installed.compiled, installed.note
    return {"py-launcher": python, "c-frontdoor": compiled}


@pytest.fixture(params=LAUNCHERS)
def launcher(request) -> str:
    """Every CNI test runs once per kind of plugin executable a node may have installed."""
    return request.param


@pytest.fixture
def cni_path(launcher, launcher_dirs) -> str:
    return f"{launcher_dirs[launcher]}:{REFERENCE_PLUGINS}"


@pytest.fixture
def node(netns):
    ns = netns("pnt-node")
    ns.ip("addr", "add", f"{NODE_IP}/32", "dev", "lo")
    return ns


@pytest.fixture
def runtime(node, cni_path, cni_driver, tmp_path):
    return Runtime(node, cni_path, cni_driver, str(tmp_path))


def kernel_state(node) -> tuple:
    """What a failed call must leave unchanged on the node."""
    return node.links(), node.routes()


@pytest.fixture(params=["standalone", "server"])
def plugin_mode(request, node):
    """Run the test with the plugins doing their own work, and again with the node's warm
    `podnet cni-server` doing it for them (the same verbs through cni/shim.py)."""
    if request.param == "standalone":
        yield "standalone"
        return
    server = node.popen(sys.executable, "-m", "podnet.cli", "cni-server", stderr=subprocess.PIPE)
    try:
        line = server.stderr.readline().decode()
        assert "listening" in line, line
        yield "server"
    finally:
        server.kill()
        server.wait()
