"""Hostile objects and files in the objects directory (issue 13): refused with file, object and
field named, everything valid beside them kept, and never a hang, a traceback or rule text
that holds what the API server would never have accepted. No root needed."""

from __future__ import annotations

import logging
import os
import threading

import pytest

import safeload
from proxy.objects import Service, load_text
from proxy.ruletext import comment
from proxy.source import DirectorySource
from proxy.trackers import Trackers

INJECTION = "x\n-I INPUT -p tcp --dport 22 -j DROP\n#"
GOOD = """apiVersion: v1
kind: Service
metadata: {name: good, namespace: default}
spec: {clusterIP: 10.96.0.20, ports: [{name: http, port: 80}]}
"""


def svc_yaml(name: str, port_name: str = "http", namespace: str = "default") -> str:
    import json

    return (
        "apiVersion: v1\nkind: Service\n"
        f"metadata: {{name: {json.dumps(name)}, namespace: {json.dumps(namespace)}}}\n"
        f"spec: {{clusterIP: 10.96.0.21, ports: [{{name: {json.dumps(port_name)}, port: 80}}]}}\n"
    )


@pytest.mark.parametrize(
    ("text", "field"),
    [
        (svc_yaml(INJECTION), "metadata.name"),
        (svc_yaml('we"b'), "metadata.name"),
        (svc_yaml("web\n"), "metadata.name"),  # a trailing newline: names match as whole strings
        (svc_yaml("Web"), "metadata.name"),
        (svc_yaml("9web"), "metadata.name"),  # Services are DNS-1035 labels
        (svc_yaml("a" * 64), "metadata.name"),
        (svc_yaml("web", port_name='ht"tp'), "spec.ports[0].name"),
        (svc_yaml("web", port_name=INJECTION), "spec.ports[0].name"),
        (svc_yaml("web", namespace="a/b"), "metadata.namespace"),
        (svc_yaml("web", namespace="a b"), "metadata.namespace"),
    ],
)
def test_bad_names_are_refused_with_the_field_and_the_rest_kept(text, field):
    loaded = load_text(text + "---\n" + GOOD, "svc.yaml")
    assert [o.name for o in loaded.objects] == ["good"]
    (err,) = loaded.errors
    assert err.field == field and err.where.startswith("svc.yaml")
    assert "\n" not in str(err)  # the value is shown escaped: a log line stays one line


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        ("{clusterIP: 10.96.0.1, ports: [{port: 80}, {port: 81}]}", "spec.ports[0].name"),
        ("{clusterIP: 10.96.0.1, ports: [{name: a, port: 80}, {name: b, port: 80}]}", "spec.ports[1]"),
        ("{clusterIP: 10.96.0.1, ports: [{name: a, port: 0}]}", "spec.ports[0].port"),
        ("{clusterIP: 10.96.0.1, ports: [{name: a, port: 65536}]}", "spec.ports[0].port"),
        ("{clusterIP: 10.96.0.1, ports: [{name: a, port: '80'}]}", "spec.ports[0].port"),
        ("{clusterIP: 10.96.0.1, ports: [{name: a, port: 80, protocol: ICMP}]}", "spec.ports[0].protocol"),
        ("{clusterIP: '10.96.0.1\\n', ports: [{name: a, port: 80}]}", "spec.clusterIP"),
        ("{clusterIPs: [10.96.0.1, 10.96.0.2], ports: [{name: a, port: 80}]}", "spec.clusterIPs"),
        ("{clusterIP: 10.96.0.1, type: Bogus, ports: [{name: a, port: 80}]}", "spec.type"),
        (
            "{clusterIP: 10.96.0.1, externalIPs: ['1.2.3.4 -j ACCEPT'], ports: [{name: a, port: 80}]}",
            "spec.externalIPs[0]",
        ),
        (
            "{clusterIP: 10.96.0.1, loadBalancerSourceRanges: ['0/0;'], ports: [{name: a, port: 80}]}",
            "spec.loadBalancerSourceRanges[0]",
        ),
    ],
)
def test_bad_fields_are_refused_as_the_api_server_would(spec, field):
    text = f"apiVersion: v1\nkind: Service\nmetadata: {{name: web}}\nspec: {spec}\n"
    loaded = load_text(text, "f.yaml")
    assert loaded.objects == ()
    assert [e.field for e in loaded.errors] == [field]


def test_endpoint_slice_names_and_hints_are_validated():
    text = """apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: web-1, labels: {kubernetes.io/service-name: "web\\n"}}
addressType: IPv4
endpoints: [{addresses: [10.0.0.1]}]
"""
    (err,) = load_text(text, "s.yaml").errors
    assert err.field == "metadata.labels[kubernetes.io/service-name]"
    text = text.replace('"web\\n"', "web").replace("[10.0.0.1]}", '[10.0.0.1], zone: "a\\"b"}')
    (err,) = load_text(text, "s.yaml").errors
    assert err.field == "endpoints[0].zone"


def test_one_quoting_function_neutralises_anything():
    for text in (INJECTION, 'a"b', "a\\b", "a\rb", "a\x00b", "é", "x" * 1000):
        quoted = comment(text)
        inner = quoted[1:-1]
        assert quoted[0] == quoted[-1] == '"' and len(quoted) <= 257
        assert not any(c in inner for c in '"\\\r\n\x00'), quoted
    assert comment("default/web:http cluster IP") == '"default/web:http cluster IP"'


# ---------------------------------------------------------------- hostile files


def write(path, data: bytes | str) -> None:
    with open(path, "wb") as f:
        f.write(data.encode() if isinstance(data, str) else data)


def scan(directory) -> tuple[DirectorySource, Trackers]:
    """One scan, which must come back: a hang fails the test instead of blocking the run."""
    source, trackers = DirectorySource(str(directory)), Trackers("n1")
    done = threading.Event()

    def run() -> None:
        source.scan(trackers)
        done.set()

    threading.Thread(target=run, daemon=True).start()
    assert done.wait(20), "the scan blocked"
    return source, trackers


def services(trackers: Trackers) -> list[str]:
    return sorted(k[1] for k, (_, cur) in trackers.services._pending.items() if cur is not None)


ALIAS_BOMB = 'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n' + "".join(
    f"{n}: &{n} [{', '.join([f'*{p}'] * 9)}]\n" for p, n in zip("abcdefgh", "bcdefghi", strict=True)
)


@pytest.mark.parametrize(
    ("name", "data", "problem"),
    [
        ("bomb.yaml", ALIAS_BOMB, "aliases are expanded"),
        ("cycle.yaml", "&a [*a]\n", "refers to its own anchor"),
        ("cycle2.yaml", "a: &a {b: *a}\n", "refers to its own anchor"),
        ("deep.yaml", "[" * 5000 + "]" * 5000, "nested more than"),
        ("deep2.yaml", "- " * 3000 + "x\n", "nested more than"),
        ("deep.json", '{"a":' * 5000 + "1" + "}" * 5000, "nested more than"),
        ("latin1.yaml", b"kind: Service\nmetadata: {name: caf\xe9}\n", "not UTF-8"),
        ("huge.yaml", b"# " + b"x" * (safeload.DEFAULT.max_bytes + 1), "more than the limit"),
        ("tab.yaml", "a:\n\t- b\n", "not valid YAML"),
    ],
)
def test_hostile_files_are_refused_and_the_rest_is_read(tmp_path, name, data, problem):
    write(tmp_path / "good.yaml", GOOD)
    write(tmp_path / name, data)
    source, trackers = scan(tmp_path)
    assert services(trackers) == ["good"]
    (err,) = source.errors
    assert err.where == name and problem in err.problem, err


def test_a_fifo_named_yaml_never_blocks(tmp_path):
    write(tmp_path / "good.yaml", GOOD)
    os.mkfifo(tmp_path / "x.yaml")
    source, trackers = scan(tmp_path)
    assert services(trackers) == ["good"]
    (err,) = source.errors
    assert err.where == "x.yaml" and "FIFO" in err.problem


def test_a_file_gone_bad_keeps_its_last_good_objects(tmp_path):
    write(tmp_path / "svc.yaml", GOOD)
    source, trackers = DirectorySource(str(tmp_path)), Trackers("n1")
    source.scan(trackers)
    trackers.drain()
    write(tmp_path / "svc.yaml", "&a [*a]\n" + " " * 10)  # another size: the scan re-reads it
    source.scan(trackers)
    assert source.errors and not trackers.pending()  # nothing was withdrawn
    assert [k for (_, k) in source.current] == [("default", "good")]


def test_duplicates_across_files_have_a_deterministic_winner_and_a_warning(tmp_path, caplog):
    write(tmp_path / "b.yaml", GOOD.replace("10.96.0.20", "10.96.0.22"))
    write(tmp_path / "a.yaml", GOOD)
    with caplog.at_level(logging.WARNING, logger="podnet.proxy"):
        source, _ = scan(tmp_path)
    (svc,) = [o for o in source.current.values() if isinstance(o, Service)]
    assert svc.cluster_ips == ("10.96.0.20",)  # a.yaml comes first in path order
    (warning,) = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert "default/good" in warning and "a.yaml" in warning and "b.yaml" in warning
