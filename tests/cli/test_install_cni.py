"""`podnet install-cni` without root: the conflist the README shows, chained plugins linked,
and launchers that never point into a source checkout."""

from __future__ import annotations

import json
import os

import pytest
from click.testing import CliRunner

from cni import install
from cni.config import parse_netconf
from podnet.cli import cli

README_CONFLIST = {
    "cniVersion": "1.0.0",
    "name": "podnet",
    "plugins": [
        {
            "type": "podnet-cni",
            "mtu": 1450,
            "ipMasq": True,
            "clusterCIDR": "10.244.0.0/16",
            "dns": {"nameservers": ["10.96.0.10"]},
            "ipam": {
                "type": "podnet-ipam",
                "ranges": [[{"subnet": "10.244.1.0/24"}]],
                "dataDir": "/var/lib/podnet/networks",
            },
        },
        {"type": "portmap", "capabilities": {"portMappings": True}},
    ],
}


@pytest.fixture
def plugin_dir(tmp_path):
    """A stand-in for /usr/lib/cni holding an executable portmap."""
    d = tmp_path / "usr-lib-cni"
    d.mkdir()
    portmap = d / "portmap"
    portmap.write_text("#!/bin/sh\n")
    portmap.chmod(0o755)
    return d


def test_the_readme_command_writes_the_readme_conflist(tmp_path, plugin_dir):
    args = ["install-cni", "--bin-dir", str(tmp_path / "bin"), "--conf-dir", str(tmp_path / "conf")]
    args += ["--subnet", "10.244.1.0/24", "--mtu", "1450", "--chain", "portmap", "--plugin-dir", str(plugin_dir)]
    result = CliRunner().invoke(cli, [*args, "--from-checkout"])
    assert result.exit_code == 0, result.output
    written = json.loads((tmp_path / "conf" / "10-podnet.conflist").read_text())
    assert written == README_CONFLIST
    conf = parse_netconf({**written["plugins"][0], "cniVersion": "1.0.0", "name": "podnet"})
    assert conf.ip_masq and [str(c) for c in conf.cluster_cidrs] == ["10.244.0.0/16"]
    assert os.readlink(tmp_path / "bin" / "portmap") == str(plugin_dir / "portmap")


def test_a_missing_chained_plugin_is_named_and_nothing_is_written(tmp_path):
    args = ["install-cni", "--bin-dir", str(tmp_path / "bin"), "--conf-dir", str(tmp_path / "conf")]
    result = CliRunner().invoke(cli, [*args, "--chain", "portmap", "--plugin-dir", str(tmp_path), "--from-checkout"])
    assert result.exit_code == 1
    assert "portmap is not in" in result.output and "containernetworking-plugins" in result.output
    assert not (tmp_path / "conf").exists() and not (tmp_path / "bin" / "podnet-cni").exists()


def test_no_ip_masq_and_several_nameservers():
    opts = install.ConflistOptions(ip_masq=False, nameservers=("10.96.0.10", "1.1.1.1"), data_dir=None)
    main = install.conflist(opts)["plugins"][0]
    assert "ipMasq" not in main and main["dns"] == {"nameservers": ["10.96.0.10", "1.1.1.1"]}
    assert "dataDir" not in main["ipam"] and "mtu" not in main


def test_launchers_from_a_checkout_are_refused_unless_asked_for(tmp_path, monkeypatch):
    monkeypatch.setattr(install, "package_root", lambda: str(tmp_path / "some-clone"))
    with pytest.raises(install.InstallError, match="pip install"):
        install.installed_package_root()
    result = CliRunner().invoke(cli, ["install-cni", "--bin-dir", str(tmp_path / "bin"), "--no-conflist"])
    assert result.exit_code == 1 and "--from-checkout" in result.output


def test_a_launcher_names_the_environment_and_the_packages_only(tmp_path):
    site = "/opt/podnet/lib/python3.11/site-packages"
    [cni_launcher, _] = install.write_launchers(str(tmp_path), "/opt/podnet/bin/python3", site)
    with open(cni_launcher) as f:
        text = f.read()
    assert text.startswith("#!/opt/podnet/bin/python3 -IS\n")
    assert f"sys.path.extend({[site]!r})" in text
