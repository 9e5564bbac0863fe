"""podnet's fuzz tier, pure (no root): the three entry points (CNI environment and netconf,
proxy objects, lab topologies and manifests) take a corpus of hostile files and generated
input, and each answers with its own typed error or a valid value; never another exception,
never a hang. The namespace-level half is test_plugin_in_namespaces.py."""

from __future__ import annotations

import contextlib
import io
import json
import os
import string
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

import safeload
from cni import skel
from cni.config import parse_invocation, parse_netconf
from cni.errors import CNIError
from cni.ipam_plugin import load as load_ipam
from podnet.lab import spec
from proxy.objects import DNS1035_LABEL, DNS1123_LABEL, EndpointSlice, Service, load_text
from proxy.ruletext import comment
from proxy.source import DirectorySource
from proxy.trackers import Trackers

CORPUS = Path(__file__).parent / "corpus"


def corpus(part: str) -> list[Path]:
    return sorted((CORPUS / part).iterdir())


# ---------------------------------------------------------------- the corpus


@pytest.mark.parametrize("path", corpus("proxy"), ids=lambda p: p.name)
def test_proxy_corpus(tmp_path, path):
    (tmp_path / path.name).write_bytes(path.read_bytes())
    source = DirectorySource(str(tmp_path))
    source.scan(Trackers("n1"))
    assert source.errors and not source.current, "every corpus file is refused, whole or per object"


@pytest.mark.parametrize("path", corpus("lab"), ids=lambda p: p.name)
def test_lab_corpus(path):
    with pytest.raises(spec.SpecError):
        spec.load(str(path))
    with pytest.raises(spec.SpecError):
        spec.load_objects(str(path))


def _parse_only(call: skel.Call) -> None:
    """What every verb does before it touches anything: netconf and IPAM config parsed."""
    parse_netconf(call.conf)
    load_ipam(call.conf)


ENV = {"CNI_COMMAND": "ADD", "CNI_CONTAINERID": "c1", "CNI_NETNS": "/run/netns/p", "CNI_IFNAME": "eth0"}


def run_plugin(environ: dict, stdin: bytes) -> dict:
    out = io.StringIO()
    status = skel.run(dict.fromkeys(skel_verbs(), _parse_only), environ=environ, stdin=io.BytesIO(stdin), stdout=out)
    reply = json.loads(out.getvalue()) if out.getvalue() else {}
    assert status == 0 or reply["code"] != 999, reply
    return reply


def skel_verbs() -> tuple[str, ...]:
    return ("ADD", "DEL", "CHECK", "GC", "STATUS")


@pytest.mark.parametrize("path", corpus("cni"), ids=lambda p: p.name)
def test_cni_corpus(path):
    reply = run_plugin(ENV, path.read_bytes())
    assert reply.get("code") in (1, 4, 6, 7), reply
    assert "internal error" not in reply.get("msg", "")


# ---------------------------------------------------------------- generated input

NASTY = st.sampled_from(["\n", '"', "\\", "\x00", "\ud800", "%d", " ", "\t", ".", "..", "/", ":", "é", "-", "A", "0"])
TEXT = st.one_of(
    st.text(max_size=40), st.lists(st.one_of(NASTY, st.text(string.ascii_lowercase, max_size=5))).map("".join)
)
JSON = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(allow_nan=False), TEXT),
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(TEXT, inner, max_size=4)),
    max_leaves=25,
)


@given(
    name=TEXT,
    namespace=TEXT,
    port_name=TEXT,
    port=JSON,
    protocol=st.one_of(st.sampled_from(["TCP", "UDP", "SCTP"]), TEXT),
    cluster_ip=st.one_of(st.sampled_from(["10.96.0.1", "fd00::1", "None", ""]), TEXT),
    extra=st.dictionaries(st.sampled_from(["type", "externalIPs", "sessionAffinity", "externalTrafficPolicy"]), JSON),
)
def test_proxy_objects_are_valid_or_refused(name, namespace, port_name, port, protocol, cluster_ip, extra):
    obj = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"clusterIP": cluster_ip, "ports": [{"name": port_name, "port": port, "protocol": protocol}], **extra},
    }
    loaded = load_text(json.dumps(obj), "f.json")
    for svc in loaded.objects:
        assert isinstance(svc, Service)
        assert DNS1035_LABEL.fullmatch(svc.name) and DNS1123_LABEL.fullmatch(svc.namespace)
        assert all(p.name == "" or DNS1123_LABEL.fullmatch(p.name) for p in svc.ports)
    assert len(loaded.objects) + len(loaded.errors) == 1


@given(doc=JSON)
def test_any_json_document_is_objects_or_errors(doc):
    loaded = load_text(json.dumps(doc), "f.json")
    assert all(isinstance(o, Service | EndpointSlice) or o is not None for o in loaded.objects)


@given(text=st.text(alphabet=st.sampled_from(list("[]{}&*ab:-,\n !'\"#|>")), max_size=200))
def test_any_yaml_text_is_documents_or_a_load_error(text):
    with contextlib.suppress(safeload.LoadError):
        safeload.load_documents(text, "t.yaml")


@given(text=st.text())
def test_a_comment_is_always_one_safe_token(text):
    quoted = comment(text)
    assert quoted.startswith('"') and quoted.endswith('"') and len(quoted) <= 257
    assert not any(c in quoted[1:-1] for c in '"\\\n\r\x00')


@given(env=st.dictionaries(st.sampled_from(sorted(ENV) + ["CNI_ARGS", "CNI_PATH"]), TEXT, max_size=6))
def test_any_cni_environment_is_parsed_or_typed_error(env):
    try:
        parse_invocation(dict(ENV, **env))
    except CNIError as e:
        assert e.code in (4,), e.msg


@given(
    name=TEXT,
    ipam=st.fixed_dictionaries(
        {"type": st.one_of(st.just("podnet-ipam"), TEXT)},
        optional={
            "ranges": JSON,
            "subnet": st.one_of(st.ip_addresses().map(lambda a: f"{a}/24"), TEXT),
            "dataDir": st.one_of(st.just("/tmp/x"), TEXT),
            "routes": JSON,
            "store": TEXT,
        },  # fmt: skip
    ),
    extra=st.dictionaries(st.sampled_from(["mtu", "ipMasq", "clusterCIDR", "dns", "prevResult"]), JSON),
)
def test_any_netconf_is_parsed_or_a_typed_error(name, ipam, extra):
    conf = {"cniVersion": "1.0.0", "name": name, "type": "podnet-cni", "ipam": ipam, **extra}
    run_plugin(ENV, json.dumps(conf).encode("utf-8", "surrogatepass"))


@given(data=st.dictionaries(st.sampled_from(["name", "nodes", "network", "deployments", "services"]), JSON))
def test_any_topology_is_a_spec_or_a_spec_error(data):
    with contextlib.suppress(spec.SpecError):
        spec.parse(data)


@given(text=st.binary(max_size=300))
def test_any_topology_file_is_a_spec_or_a_spec_error(tmp_path_factory, text):
    path = os.path.join(tmp_path_factory.mktemp("lab"), "lab.yaml")
    with open(path, "wb") as f:
        f.write(text)
    with contextlib.suppress(spec.SpecError):
        spec.load(path)
