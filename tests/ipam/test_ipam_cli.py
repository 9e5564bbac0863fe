"""`podnet ipam` on both backends: what the issue lists, -o json, errors naming the input."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest
from click.testing import CliRunner

from podnet.cli import cli
from tests.ipam.conftest import etcd_url

CLUSTER = ["--cluster-cidr", "10.244.0.0/16", "--cluster-cidr", "fd00:10:244::/56"]
MASKS = ["--node-mask-size", "24", "--node-mask-size", "64"]
SERVICE = ["--service-cidr", "10.96.0.0/12"]
PODNET = os.path.join(os.path.dirname(sys.executable), "podnet")  # the installed entry point


def podnet(store_url: str, *args: str, code: int = 0) -> str:
    result = CliRunner().invoke(cli, ["ipam", "--store", store_url, *args])
    assert result.exit_code == code, result.output
    return result.output


def test_node_subnets_from_the_command_line(store_url):
    assert podnet(store_url, "node-subnet", "acquire", "n1", *CLUSTER, *MASKS) == "10.244.0.0/24\nfd00:10:244::/64\n"
    out = json.loads(podnet(store_url, "node-subnet", "acquire", "n2", *CLUSTER, *MASKS, "-o", "json"))
    assert out == {"node": "n2", "subnets": ["10.244.1.0/24", "fd00:10:244:1::/64"]}
    assert podnet(store_url, "node-subnet", "acquire", "n1", *CLUSTER, *MASKS).startswith("10.244.0.0/24\n")
    assert json.loads(podnet(store_url, "node-subnet", "list", "-o", "json")) == {
        "n1": ["10.244.0.0/24", "fd00:10:244::/64"],
        "n2": ["10.244.1.0/24", "fd00:10:244:1::/64"],
    }
    podnet(store_url, "node-subnet", "release", "n1")
    assert podnet(store_url, "node-subnet", "list") == "n2\t10.244.1.0/24 fd00:10:244:1::/64\n"
    # Without --node-mask-size: kube-controller-manager's /24 and /64.
    assert podnet(store_url, "node-subnet", "acquire", "n3", *CLUSTER) == "10.244.2.0/24\nfd00:10:244:2::/64\n"


def test_clusterips_show_and_gc_from_the_command_line(store_url):
    assert podnet(store_url, "clusterip", "allocate", "10.96.0.10", *SERVICE, "--owner", "kube-system/dns") == (
        "10.96.0.10\n"
    )
    dynamic = podnet(store_url, "clusterip", "allocate", *SERVICE, "-o", "json")
    assert json.loads(dynamic)["ip"].startswith("10.")
    out = podnet(store_url, "clusterip", "allocate", "10.96.0.10", *SERVICE, code=1)
    assert "ip: 10.96.0.10 is already allocated (to kube-system/dns)" in out
    listing = json.loads(podnet(store_url, "clusterip", "list", "-o", "json"))
    assert listing == {"10.96.0.10": "kube-system/dns", json.loads(dynamic)["ip"]: ""}
    podnet(store_url, "node-subnet", "acquire", "n1", *CLUSTER, *MASKS)
    show = json.loads(podnet(store_url, "show", "-o", "json"))
    assert show == [
        {"kind": "node-subnets", "range": "10.244.0.0/16", "unit": "/24", "size": 256, "used": 1, "free": 255},
        {"kind": "node-subnets", "range": "fd00:10:244::/56", "unit": "/64", "size": 256, "used": 1, "free": 255},
        {
            "kind": "clusterips",
            "range": "10.96.0.0/12",
            "unit": "addresses",
            "size": 1048574,
            "used": 2,
            "free": 1048572,
        },
    ]
    assert podnet(store_url, "show").splitlines()[0].split() == ["KIND", "RANGE", "UNIT", "SIZE", "USED", "FREE"]
    podnet(store_url, "clusterip", "release", "10.96.0.10")
    assert "10.96.0.10" not in podnet(store_url, "clusterip", "list")
    assert json.loads(podnet(store_url, "gc", "-o", "json")) == []


def test_gc_drops_expired_leases_of_the_local_store(tmp_path):
    url = f"file:{tmp_path}/s"
    podnet(
        url, "node-subnet", "acquire", "gone", "--cluster-cidr", "10.244.0.0/16", "--node-mask-size", "24", "--ttl", "1"
    )
    time.sleep(1.2)
    assert podnet(url, "node-subnet", "list") == ""
    assert json.loads(podnet(url, "gc", "-o", "json")) == [
        {"kind": "node-subnets", "key": "10.244.0.0/24", "why": "lease expired"}
    ]
    assert not [p for p in (tmp_path / "s" / "node-subnets").iterdir() if not p.name.startswith(".")]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["node-subnet", "acquire", "n", "--cluster-cidr", "10.244.0.0/33", "--node-mask-size", "24"], "cluster-cidr:"),
        (
            ["node-subnet", "acquire", "n", "--cluster-cidr", "10.244.0.0/16", "--node-mask-size", "8"],
            "node-mask-size:",
        ),
        (["node-subnet", "acquire", "n", "--node-mask-size", "8"], "cluster-cidr: missing"),
        (["clusterip", "allocate", "10.1.0.1", *SERVICE], "ip: 10.1.0.1 is outside the service-cidr"),
        (["clusterip", "allocate", "--service-cidr", "nope"], "service-cidr: 'nope' is not a CIDR"),
    ],
)
def test_bad_input_is_refused_naming_it(tmp_path, args, message):
    out = podnet(f"file:{tmp_path}/s", *args, code=1)
    assert f"Error: {message}" in out


def test_a_store_url_that_does_not_parse_is_refused_naming_it():
    out = podnet("etcd://nohost/x", "show", code=1)
    assert "Error: --store: 'etcd://nohost/x' is not a store URL" in out


@pytest.mark.integration
def test_an_unreachable_etcd_says_try_again(etcd):
    url = etcd_url(etcd)
    etcd.kill()
    result = CliRunner().invoke(cli, ["ipam", "--store", url, "node-subnet", "list"])
    assert result.exit_code == 75 and "try again" in result.output


def _acquire_keep(url: str) -> subprocess.Popen:
    args = ["node-subnet", "acquire", "n1", "--cluster-cidr", "10.244.0.0/16", "--node-mask-size", "24"]
    return subprocess.Popen(
        [PODNET, "ipam", "--store", url, *args, "--ttl", "3", "--keep"], stdout=subprocess.PIPE, text=True
    )


@pytest.mark.integration
def test_a_live_node_keeps_its_subnet_across_podnet_restarts_and_a_dead_one_loses_it(etcd):
    url = etcd_url(etcd)
    podnet(url, "node-subnet", "acquire", "n0", "--cluster-cidr", "10.244.0.0/16", "--node-mask-size", "24")
    first = _acquire_keep(url)
    try:
        assert first.stdout.readline() == "10.244.1.0/24\n"
        time.sleep(4)  # longer than the TTL: only renewal keeps it
        assert "n1\t10.244.1.0/24" in podnet(url, "node-subnet", "list")
    finally:
        first.terminate()
        assert first.wait(timeout=10) == 0
    second = _acquire_keep(url)  # podnet restarted on the node, within the TTL
    try:
        assert second.stdout.readline() == "10.244.1.0/24\n"
    finally:
        second.kill()  # the node dies: nobody renews
        second.wait()
    time.sleep(4)
    assert podnet(url, "node-subnet", "list") == "n0\t10.244.0.0/24\n"
