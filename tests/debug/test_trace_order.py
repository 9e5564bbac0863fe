"""trace's pure parts: rules in crossing order, and a port with --proto icmp refused."""

from __future__ import annotations

import pytest

from podnet.debug.nftrace import RuleHit
from podnet.debug.topology import TargetError
from podnet.debug.trace import Hop, crossing_order, packet_relation, parse_target

PORT = 61000
REQ = f"IN=pn1 OUT= SRC=10.244.1.2 DST=10.96.0.5 SPORT={PORT} DPORT=80 SYN"
REQ_B = f"IN=eth0 OUT= SRC=10.244.1.2 DST=10.244.2.3 SPORT={PORT} DPORT=8080 SYN"
REPLY_B = f"IN=pn9 OUT= SRC=10.244.2.3 DST=10.244.1.2 SPORT=8080 DPORT={PORT} ACK SYN"
REPLY = f"IN=eth0 OUT= SRC=10.244.2.3 DST=10.244.1.2 SPORT=8080 DPORT={PORT} ACK SYN"


def hit(where: str, chain: str, packet: str) -> RuleHit:
    return RuleHit(where, "nat", chain, "rule", "ACCEPT", f"-A {chain}", packet)


def hop(ms: float, where: str, direction: str, relation: str) -> Hop:
    return Hop(ms, where, "eth0", direction, relation, "")


def test_rules_come_in_the_order_the_packet_crossed_the_nodes():
    # as the monitors report them: all of node a's events, then all of node b's
    hits = [
        hit("node/a", "A-REQ-1", REQ),
        hit("node/a", "A-REQ-2", REQ),
        hit("node/a", "A-REPLY", REPLY),
        hit("node/b", "B-REQ", REQ_B),
        hit("node/b", "B-REPLY", REPLY_B),
    ]
    hops = [
        hop(0.01, "node/a", "in", "request"),
        hop(0.02, "node/a", "out", "request"),
        hop(0.03, "node/b", "in", "request"),
        hop(0.05, "node/b", "in", "reply"),
        hop(0.07, "node/a", "in", "reply"),
    ]
    order = [h.chain for h in crossing_order(hits, hops, PORT, "tcp")]
    assert order == ["A-REQ-1", "A-REQ-2", "B-REQ", "B-REPLY", "A-REPLY"]


def test_a_pass_without_a_hop_stays_after_its_node_s_previous_pass():
    hits = [hit("node/a", "A-REQ", REQ), hit("node/a", "A-REPLY", REPLY), hit("node/b", "B-REQ", REQ_B)]
    hops = [hop(0.01, "node/a", "in", "request"), hop(0.03, "node/b", "in", "request")]
    assert [h.chain for h in crossing_order(hits, hops, PORT, "tcp")] == ["A-REQ", "A-REPLY", "B-REQ"]


def test_packet_relation_reads_both_monitors_spelling():
    assert packet_relation(REQ, PORT, "tcp") == "request"
    assert packet_relation(REPLY, PORT, "tcp") == "reply"
    assert packet_relation(f'iif "pn1" ip saddr 10.0.0.1 tcp sport {PORT} tcp dport 80', PORT, "tcp") == "request"
    assert packet_relation("IN=pn1 SRC=10.0.0.1 DST=10.0.0.2 TYPE=8 CODE=0 ID=7", 7, "icmp") == "request"
    assert packet_relation("ip saddr 10.0.0.2 icmp type echo-reply icmp id 7", 7, "icmp") == "reply"
    assert packet_relation("IN=pn1 SRC=10.0.0.1", PORT, "tcp") is None


@pytest.mark.parametrize("to", ["pod/b:8080", "svc/backend:6379", "10.244.1.2:80"])
def test_icmp_with_a_port_is_refused_not_ignored(to):
    with pytest.raises(TargetError, match="ICMP has no ports"):
        parse_target(None, to, "icmp")  # refused before the cluster is consulted
