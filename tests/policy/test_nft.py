"""The podnet-policy table in a namespace of its own: what the renderer writes, nft takes;
writing it again replaces it whole; clean-up removes it and nothing else."""

from __future__ import annotations

import shutil
import subprocess
import uuid

import pytest

from policy import nft
from tests.policy.test_model import (
    ALLOW_CLIENTS,
    CLUSTER,
    DENY_EGRESS_DNS,
    EGRESS_NAMED,
    END_PORT,
    IPBLOCK,
    NAMED_PORT,
    netpol,
    node_rules,
    view_of,
)

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not shutil.which("nft"), reason="needs nftables"),
]


@pytest.fixture
def ns():
    name = f"pnpol-{uuid.uuid4().hex[:6]}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], check=True)


def listed(ns: str) -> str:
    return subprocess.run(["ip", "netns", "exec", ns, "nft", "list", "ruleset"], capture_output=True, text=True).stdout


def test_rendered_tables_apply_replace_and_clean_up_only_ours(ns):
    subprocess.run(["ip", "netns", "exec", ns, "nft", "add", "table", "inet", "someone-else"], check=True)
    policies = [ALLOW_CLIENTS, IPBLOCK, DENY_EGRESS_DNS, NAMED_PORT, EGRESS_NAMED, END_PORT]
    v = view_of(*CLUSTER, *(netpol(p) for p in policies))
    nft.apply(nft.render(node_rules(v, "n1")), ns)
    text = listed(ns)
    assert "chain in/default/web" in text and "chain out/default/web" in text
    assert 'comment "allow default/web-allow-clients ingress[0]"' in text
    assert "ip saddr 10.244.2.0/24 ip saddr != 10.244.2.3" in text
    assert "tcp dport 8000-8100" in text

    # the same state again, then one with nobody isolated: replaced whole, never appended
    nft.apply(nft.render(node_rules(v, "n1")), ns)
    assert listed(ns).count("chain in/default/web") == 1
    nft.apply(nft.render([]), ns)
    assert "in/default/web" not in listed(ns) and "table inet podnet-policy" in listed(ns)

    assert nft.cleanup(ns) and not nft.cleanup(ns)
    text = listed(ns)
    assert "podnet-policy" not in text and "table inet someone-else" in text


def test_dual_stack_pods_and_blocks(ns):
    from tests.policy.test_model import pod

    web6 = pod("web6", "10.244.1.7", {"app": "web"})
    web6["status"]["podIPs"] = [{"ip": "10.244.1.7"}, {"ip": "fd00:10:244:1::7"}]
    client6 = pod("client6", "10.244.2.7", {"app": "client"}, node="n2")
    client6["status"]["podIPs"] = [{"ip": "10.244.2.7"}, {"ip": "fd00:10:244:2::7"}]
    v6_block = netpol("""
metadata: {name: from-v6-block}
spec:
  podSelector: {matchLabels: {app: web}}
  ingress: [{from: [{ipBlock: {cidr: "fd00:10:244::/48", except: ["fd00:10:244:3::/64"]}}]}]
""")
    v = view_of(web6, client6, netpol(ALLOW_CLIENTS), v6_block)
    nft.apply(nft.render(node_rules(v, "n1")), ns)
    text = listed(ns)
    assert "ip6 saddr fd00:10:244:2::7" in text and "ip saddr 10.244.2.7" in text
    assert "ip6 saddr fd00:10:244::/48 ip6 saddr != fd00:10:244:3::/64" in text
    assert "ip6 daddr vmap { fd00:10:244:1::7 : jump in/default/web6 }" in text
    nft.cleanup(ns)


def test_many_peers_share_one_named_set(ns):
    from tests.policy.test_model import pod

    clients = [pod(f"c{i}", f"10.244.2.{10 + i}", {"app": "client"}, node="n2") for i in range(8)]
    webs = [pod(f"w{i}", f"10.244.1.{10 + i}", {"app": "web"}) for i in range(3)]
    v = view_of(*clients, *webs, netpol(ALLOW_CLIENTS))
    nft.apply(nft.render(node_rules(v, "n1")), ns)
    text = listed(ns)
    assert text.count("set peers4-") == 1 and text.count("ip saddr @peers4-") == 3
    assert "10.244.2.17" in text
    nft.cleanup(ns)
