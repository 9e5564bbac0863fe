"""podnet/output.py: one -o vocabulary, rendered the same way by every command."""

from __future__ import annotations

import json

import click
import pytest
import yaml
from click.testing import CliRunner

from podnet.output import columns, output_option, render

DATA = {"items": [{"name": "a", "ip": "10.0.0.1"}]}


def test_each_format_renders_the_same_data():
    assert json.loads(render("json", DATA)) == DATA
    assert yaml.safe_load(render("yaml", DATA)) == DATA
    assert render("text", DATA, ["a  10.0.0.1"]) == "a  10.0.0.1"
    assert render("wide", DATA, ["a"], wide=["a  10.0.0.1  node1"]) == "a  10.0.0.1  node1"
    assert render("wide", DATA, ["a"]) == "a"  # no wider view: the text one
    assert render("name", DATA, names=["pod/a"]) == "pod/a"


def test_views_are_made_only_when_asked_for():
    def boom() -> list[str]:
        raise AssertionError("text view built for -o json")

    assert json.loads(render("json", DATA, boom)) == DATA


def test_name_without_names_is_a_usage_error():
    with pytest.raises(click.UsageError):
        render("name", DATA, ["a"])


def test_columns_are_kubectl_like():
    assert columns(["NAME", "SIZE"], [["a", 5], ["long-name", 123]], right=["SIZE"]) == [
        "NAME        SIZE",
        "a              5",
        "long-name    123",
    ]


def test_option_offers_only_the_formats_a_command_has_and_keeps_the_old_alias():
    @click.command()
    @output_option("text", "json")
    def cmd(output: str) -> None:
        click.echo(output)

    runner = CliRunner()
    assert runner.invoke(cmd, ["-o", "json"]).output == "json\n"
    assert runner.invoke(cmd, ["-o", "table"]).output == "text\n"  # probe's old spelling
    assert runner.invoke(cmd, ["-o", "yaml"]).exit_code == 2
    with pytest.raises(ValueError):
        output_option("text", "xml")
