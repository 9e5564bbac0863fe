"""Group options accepted after the subcommand (podnet/options.py), and --version."""

from __future__ import annotations

import json

import click
import pytest
from click.testing import CliRunner

from podnet.cli import cli
from podnet.options import SharedOption, SharedOptionsGroup

WHERE = SharedOption("--where", default="default-place", help="A place.")


@click.group(cls=SharedOptionsGroup, shared=[WHERE])
def top() -> None:
    pass


@top.group()
def sub() -> None:
    pass


@sub.command()
@click.pass_context
def leaf(ctx: click.Context) -> None:
    click.echo(WHERE.get(ctx))


@pytest.mark.parametrize(
    "args, seen",
    [
        (["sub", "leaf"], "default-place"),
        (["--where", "g", "sub", "leaf"], "g"),
        (["sub", "--where", "s", "leaf"], "s"),
        (["sub", "leaf", "--where", "l"], "l"),
        (["--where", "g", "sub", "leaf", "--where", "l"], "l"),  # the last one named wins
        (["--where", "g", "sub", "--where", "s", "leaf"], "s"),
    ],
)
def test_a_shared_option_is_taken_at_every_level(args, seen):
    result = CliRunner().invoke(top, args)
    assert result.exit_code == 0, result.output
    assert result.output == f"{seen}\n"


def test_help_of_a_leaf_lists_the_shared_option():
    assert "--where" in CliRunner().invoke(top, ["sub", "leaf", "--help"]).output


def test_ipam_store_after_the_subcommand(tmp_path):
    store = f"file:{tmp_path / 'store'}"
    runner = CliRunner()
    r = runner.invoke(cli, ["ipam", "clusterip", "allocate", "--service-cidr", "10.96.0.0/24", "--store", store])
    assert r.exit_code == 0, r.output
    ip = r.output.strip()
    listing = runner.invoke(cli, ["ipam", "--store", store, "clusterip", "list", "-o", "json"])
    assert json.loads(listing.output) == {ip: ""}
    released = runner.invoke(cli, ["ipam", "clusterip", "release", ip, "--store", store])
    assert released.output == f"released {ip}\n"
    again = runner.invoke(cli, ["ipam", "clusterip", "release", ip, "--store", store])
    assert again.output == f"{ip} was not allocated: nothing released\n"
    assert runner.invoke(cli, ["ipam", "gc", "--store", store]).output == "nothing to remove\n"


def test_node_subnet_release_says_what_it_freed(tmp_path):
    store = f"file:{tmp_path / 'store'}"
    runner = CliRunner()
    acquired = runner.invoke(cli, ["ipam", "node-subnet", "acquire", "n1", "--cluster-cidr", "10.244.0.0/16"] + [
        "--store", store])  # fmt: skip
    subnet = acquired.output.strip()
    out = runner.invoke(cli, ["ipam", "node-subnet", "release", "n1", "--store", store, "-o", "json"]).output
    assert json.loads(out) == {"node": "n1", "released": [subnet]}


def test_version_comes_from_the_package_metadata():
    from importlib.metadata import version

    assert CliRunner().invoke(cli, ["--version"]).output == f"podnet {version('podnet')}\n"


def test_podnet_proxy_version(capsys):
    from proxy.daemon import main

    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.startswith("podnet-proxy ")
