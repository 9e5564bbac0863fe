"""Hostile lab topologies and manifests (issue 13): a clear error naming the file or field,
never a traceback, a hang or a quadratic check. Pure: nothing is built."""

from __future__ import annotations

import os
import time

import pytest
import yaml

from podnet.lab import spec


def write(tmp_path, data: bytes | str, name: str = "lab.yaml") -> str:
    path = tmp_path / name
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    return str(path)


@pytest.mark.parametrize(
    ("data", "words"),
    [
        (b"name: caf\xe9\nnodes: [n1]\n", ["not UTF-8"]),
        ("nodes: " + "[" * 500 + "]" * 500 + "\n", ["nested more than"]),
        ("nodes: &a [*a]\n", ["refers to its own anchor"]),
        ('nodes: ["n1\\n"]\n', ["nodes[0]"]),  # a name ending in a newline
        ('name: "lab\\n"\nnodes: [n1]\n', ["name"]),
        ("nodes: [n1]\ndeployments: [{name: web, labels: {'a\\nb': x}}]\n", ["deployments[0].labels"]),
        ("nodes: [n1]\ndeployments: [{name: web, labels: {app: 'x y'}}]\n", ["deployments[0].labels.app"]),
        ("nodes: [n1]\n---\nnodes: [n2]\n", ["2 YAML documents"]),
        ("nodes: [n1]\n\tbad: tab\n", ["not valid YAML"]),
        (b"# " + b"x" * (spec.MAX_FILE_BYTES + 1), ["limit"]),
    ],
)
def test_hostile_topologies_get_a_clear_error(tmp_path, data, words):
    path = write(tmp_path, data)
    with pytest.raises(spec.SpecError) as e:
        spec.load(path)
    for word in words:
        assert word in str(e.value), str(e.value)
    assert path in str(e.value) or "[" in str(e.value)


def test_ten_thousand_nodes_are_refused_by_the_limit_quickly(tmp_path):
    path = write(tmp_path, yaml.safe_dump({"nodes": [f"n{i}" for i in range(10_000)]}))
    started = time.monotonic()
    with pytest.raises(spec.SpecError) as e:
        spec.load(path)
    assert "nodes" in str(e.value) and str(spec.MAX_NODES) in str(e.value)
    assert time.monotonic() - started < 10


def test_the_duplicate_check_is_linear():
    names = [f"n{i}" for i in range(spec.MAX_NODES)]
    started = time.monotonic()
    with pytest.raises(spec.SpecError, match="appears twice"):
        spec.parse({"nodes": [*names[:-1], names[0]]})
    assert time.monotonic() - started < 1


def test_too_many_replicas_in_all_are_refused():
    deps = [{"name": f"d{i}", "replicas": 5000} for i in range(2)]
    with pytest.raises(spec.SpecError, match="replicas in all"):
        spec.parse({"nodes": ["n1"], "deployments": deps})


def test_a_fifo_as_the_topology_never_blocks(tmp_path):
    path = str(tmp_path / "lab.yaml")
    os.mkfifo(path)
    with pytest.raises(spec.SpecError, match="FIFO"):
        spec.load(path)


@pytest.mark.parametrize(
    ("data", "words"),
    [
        (b"kind: Service\nmetadata: {name: caf\xe9}\n", ["not UTF-8"]),
        ("kind: Deployment\nmetadata: &a {name: *a}\n", ["own anchor"]),
        ("kind: Service\nname: 'web\\n'\n", ["name"]),
        ("kind: Pod\n", ["kind"]),
    ],
)
def test_hostile_manifests_get_a_clear_error(tmp_path, data, words):
    path = write(tmp_path, data, "objects.yaml")
    with pytest.raises(spec.SpecError) as e:
        spec.load_objects(path)
    for word in words:
        assert word in str(e.value), str(e.value)
