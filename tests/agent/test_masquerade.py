"""The node's masquerade rule: the restore text from what the nat table holds now (no root),
and the rules in a real namespace, rewritten when the node's subnet changes."""

from __future__ import annotations

import sys

import pytest

from podnet.agent import masquerade

JUMP = "-A POSTROUTING -s 10.244.4.0/22 -m comment --comment podnet-node-masq -j PODNET-NODE-MASQ"


def test_rules_add_the_jump_once_and_leave_others_alone():
    text = masquerade.rules(4, ["10.244.4.0/22", "fd00::/64"], ["10.244.0.0/16", "fd00::/48"], [])
    assert text.splitlines() == [
        "*nat",
        ":PODNET-NODE-MASQ - [0:0]",
        "-A PODNET-NODE-MASQ -d 10.244.0.0/16 -j RETURN",
        "-A PODNET-NODE-MASQ ! -d 224.0.0.0/4 -j MASQUERADE",
        JUMP,
        "COMMIT",
    ]
    foreign = "-A POSTROUTING -s 10.0.0.0/8 -j MASQUERADE"
    again = masquerade.rules(4, ["10.244.4.0/22"], ["10.244.0.0/16"], [foreign, JUMP])
    assert JUMP not in again and foreign not in again


def test_rules_remove_the_jump_of_a_subnet_the_node_lost():
    text = masquerade.rules(4, ["10.244.8.0/22"], ["10.244.0.0/16"], [JUMP])
    assert "-D" + JUMP[2:] in text.splitlines()
    assert "-A POSTROUTING -s 10.244.8.0/22 -m comment --comment podnet-node-masq -j PODNET-NODE-MASQ" in text


@pytest.mark.integration
def test_ensure_in_a_namespace(netns):
    ns = netns()

    def nat() -> str:
        return ns.run("iptables-save", "-t", "nat").stdout

    def ensure(subnet: str) -> None:
        code = f"from podnet.agent import masquerade; masquerade.ensure([{subnet!r}], ['10.244.0.0/16'])"
        ns.run(sys.executable, "-c", code)

    ensure("10.244.4.0/22")
    ensure("10.244.4.0/22")  # a restarted agent: the same rules, not twice
    assert nat().count("podnet-node-masq") == 1 and nat().count("-A PODNET-NODE-MASQ") == 2
    ensure("10.244.8.0/22")
    assert "10.244.4.0/22" not in nat() and "-s 10.244.8.0/22" in nat()
