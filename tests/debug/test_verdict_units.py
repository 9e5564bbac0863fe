"""The pure parts of trace's verdicts: causes from evidence, kernel drop events, link
states. No namespace, no root needed."""

from __future__ import annotations

import errno

from podnet.debug import causes, kdrop, links

FORMAT = (
    'print fmt: "skbaddr=%p reason: %s", REC->skbaddr, __print_symbolic(REC->reason, '
    '{ 2, "NOT_SPECIFIED" }, { 12, "NETFILTER_DROP" }, { 16, "IP_RPFILTER" }, { 88, "IP_INNOROUTES" })'
)


def test_reason_names_come_from_the_tracepoints_format():
    names = kdrop.reason_names(FORMAT)
    assert names[12] == "NETFILTER_DROP" and names[88] == "IP_INNOROUTES" and names[2] == "NOT_SPECIFIED"


def test_a_drop_line_is_parsed_with_addresses_in_network_order():
    names = kdrop.reason_names(FORMAT)
    d = kdrop.parse("DROP 88 ip_error 4026540090 2 6 33574154 151587082 62000 80", names, [62000])
    assert (d.reason, d.location, d.ns_inode, d.ifindex) == ("IP_INNOROUTES", "ip_error", 4026540090, 2)
    assert (d.src, d.dst, d.port, d.proto) == ("10.77.0.2", "10.9.9.9", 62000, 6)
    reply = kdrop.parse("DROP 16 ip_rcv_finish 1 3 6 151587082 33574154 80 62000", names, [62000])
    assert reply.port == 62000 and reply.reason == "IP_RPFILTER"
    assert kdrop.parse("Attaching 2 probes...", names, [62000]) is None
    assert kdrop.parse("DROP x y", names, [62000]) is None
    assert kdrop.parse("DROP 999 f 1 0 17 0 0 1 2", names, [1]).reason == "999"  # a reason newer than us


def test_the_program_matches_every_flow_in_either_direction():
    text = kdrop.program([61001, 61002])
    assert "$a == 61001 || $b == 61001 || $a == 61002 || $b == 61002" in text
    assert "tracepoint:skb:kfree_skb" in text and kdrop.READY in text


def test_kernel_reasons_map_to_causes():
    assert causes.kernel_cause("NETFILTER_DROP") == "rule-drop"
    assert causes.kernel_cause("IP_RPFILTER") == "rp-filter"
    assert causes.kernel_cause("IP_INNOROUTES") == "no-route"
    assert causes.kernel_cause("PKT_TOO_BIG") == "mtu"
    assert causes.kernel_cause("NEIGH_FAILED") == "neighbour-unresolved"
    assert causes.kernel_cause("IP_LOCAL_SOURCE") == "martian-source"
    assert causes.kernel_cause("NOT_SPECIFIED") is None


def test_route_errors_send_errors_and_icmp_map_to_causes():
    assert causes.route_error_cause("Invalid cross-device link") == "rp-filter"
    assert causes.route_error_cause("Invalid argument") == "martian-source"
    assert causes.route_error_cause("Network is unreachable") == "no-route"
    assert causes.send_error_cause(errno.EMSGSIZE) == "mtu"
    assert causes.send_error_cause(errno.ENETUNREACH) == "no-route"
    assert causes.send_error_cause(errno.EPERM) == "rule-drop"
    assert causes.icmp_cause(3, 4) == "mtu"
    assert causes.icmp_cause(3, 3) == "port-closed"
    assert causes.icmp_cause(3, 13) == "rule-reject"
    assert causes.icmp_cause(3, 0) == "no-route"


def test_neighbour_states():
    assert causes.neighbour_unresolved([{"dst": "10.0.0.2", "state": ["INCOMPLETE"]}]) == "INCOMPLETE"
    assert causes.neighbour_unresolved([{"dst": "10.0.0.2", "state": ["FAILED"]}]) == "FAILED"
    assert causes.neighbour_unresolved([{"dst": "10.0.0.2", "state": ["REACHABLE"]}]) is None
    assert causes.neighbour_unresolved([]) is None


def _link(name: str, *flags: str) -> dict:
    return {"ifname": name, "flags": list(flags)}


def test_link_states():
    assert links.state(None) == "missing"
    assert links.state(_link("eth0", "BROADCAST")) == "down"
    assert links.state(_link("eth0", "BROADCAST", "UP", "NO-CARRIER")) == "no-carrier"
    assert links.state(_link("eth0", "BROADCAST", "UP", "LOWER_UP")) == "up"


def test_of_a_veth_pair_the_end_set_down_is_named_not_the_one_without_carrier():
    ends = [
        links.LinkEnd("pod", "eth0", "pod/db", "pod eth0"),
        links.LinkEnd("node", "vethdb", "node/a", "pod db's host-side veth"),
    ]
    found = {"pod": {"eth0": _link("eth0")}, "node": {"vethdb": _link("vethdb", "UP", "NO-CARRIER")}}
    [p] = links.problems(ends, found)
    assert (p.where, p.ifname, p.cause) == ("pod/db", "eth0", "interface-down")
    found = {"pod": {"eth0": _link("eth0", "UP", "NO-CARRIER")}, "node": {}}
    [p] = links.problems(ends, found)
    assert (p.where, p.ifname, p.cause) == ("node/a", "vethdb", "interface-missing")
    found = {"pod": {"eth0": _link("eth0", "UP", "LOWER_UP")}, "node": {"vethdb": _link("vethdb", "UP", "LOWER_UP")}}
    assert links.problems(ends, found) == []


def test_a_watch_without_the_tool_says_why_and_is_harmless(monkeypatch):
    monkeypatch.setattr(kdrop.shutil, "which", lambda _: None)
    w = kdrop.KernelWatch([1]).start()
    assert "bpftrace is not installed" in w.unavailable
    assert w.stop() == []
