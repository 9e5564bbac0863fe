"""Regression (issue 13): a Service whose name carries a rule of its own, or a quote, never
reaches the kernel's rules, in either mode; the valid Service beside it is programmed, and the
run succeeds. Checked with real rules in the proxy lab's node namespace."""

from __future__ import annotations

import pytest

from tests.support.proxy_lab import endpoint, endpoint_slice, service

pytestmark = pytest.mark.integration

INJECTION = "x\n-I INPUT -p tcp --dport 22 -j DROP\n#"
HTTP = [{"name": "http", "port": 80}]


def ruleset(lab) -> str:
    return lab.node.run("iptables-save").stdout + lab.node.run("nft", "list", "ruleset").stdout


@pytest.mark.parametrize("bad_name", [INJECTION, 'we"b', "web\n"], ids=["newline-rule", "quote", "trailing-newline"])
def test_injected_names_never_reach_the_rules(lab, mode, bad_name):
    before = ruleset(lab)
    bad = service(bad_name, "10.96.0.30", [{"name": 'ht"tp', "port": 22}])
    bad_port = service("web2", "10.96.0.31", [{"name": "x\n-A INPUT -j DROP\n#", "port": 22}])
    lab.write("bad.yaml", bad, bad_port, endpoint_slice("web2", [endpoint("e1")], [{"name": "http", "port": 8080}]))
    lab.write("good.yaml", service("good", "10.96.0.10", HTTP),
              endpoint_slice("good", [endpoint("e1")], [{"name": "http", "port": 8080}]))  # fmt: skip
    r = lab.once(mode=mode)
    assert r.returncode == 0, r.stderr
    assert "bad.yaml" in r.stderr and "metadata.name" in r.stderr and "spec.ports[0].name" in r.stderr
    after = ruleset(lab)
    assert "10.96.0.10" in after  # the valid Service is programmed
    assert "10.96.0.30" not in after and "10.96.0.31" not in after
    assert "dport 22" not in after and "--dport 22" not in after
    input_rules = [line for line in after.splitlines() if line.startswith("-A INPUT") or line.startswith("-I INPUT")]
    assert all("PODNET" in line for line in input_rules), input_rules
    assert before != after
    served = lab.probe("pc", "tcp", "10.96.0.10", 80, 3, timeout=1)
    assert [s.get("name") for s in served] == ["e1"] * 3


def test_two_services_claiming_one_address_never_take_the_others_down(lab, mode):
    """The API server never hands out one cluster IP or node port twice; files can. One of the
    two is programmed, and every other Service is."""
    ports = [{"name": "http", "port": 80, "nodePort": 30080}]
    lab.write("a.yaml", service("one", "10.96.0.40", ports, type="NodePort"),
              endpoint_slice("one", [endpoint("e1")], [{"name": "http", "port": 8080}]))  # fmt: skip
    lab.write("b.yaml", service("two", "10.96.0.40", ports, type="NodePort"),
              endpoint_slice("two", [endpoint("e2")], [{"name": "http", "port": 8080}]))  # fmt: skip
    lab.write("c.yaml", service("good", "10.96.0.10", HTTP),
              endpoint_slice("good", [endpoint("e1")], [{"name": "http", "port": 8080}]))  # fmt: skip
    r = lab.once(mode=mode)
    assert r.returncode == 0, r.stderr
    served = lab.probe("pc", "tcp", "10.96.0.10", 80, 3, timeout=1)
    assert [s.get("name") for s in served] == ["e1"] * 3
