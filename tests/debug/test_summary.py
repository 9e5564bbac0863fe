"""capture's one-line decoding, checked against packets scapy builds in memory (no capture)."""

from __future__ import annotations

from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.layers.inet6 import ICMPv6EchoRequest, ICMPv6ND_NA, ICMPv6ND_NS, IPv6, IPv6ExtHdrHopByHop
from scapy.layers.l2 import ARP, Dot1Q, Ether

from podnet.debug.summary import describe

MAC = "0a:58:0a:f4:01:02"


def test_arp_request_and_reply_read_as_tcpdump_prints_them():
    request = Ether() / ARP(op=1, psrc="10.244.1.1", pdst="10.244.1.2")
    reply = Ether() / ARP(op=2, hwsrc=MAC, psrc="10.244.1.2", pdst="10.244.1.1")
    assert describe(bytes(request)) == "ARP who-has 10.244.1.2 tell 10.244.1.1"
    assert describe(bytes(reply)) == f"ARP 10.244.1.2 is-at {MAC}"


def test_ipv4_tcp_udp_icmp():
    syn = Ether() / IP(src="10.0.0.1", dst="10.0.0.2") / TCP(sport=40000, dport=80, flags="S", seq=7)
    assert describe(bytes(syn)) == "IP 10.0.0.1.40000 > 10.0.0.2.80: TCP [S] seq 7 len 0"
    udp = Ether() / IP(src="10.0.0.1", dst="10.0.0.2") / UDP(sport=5353, dport=53) / (b"x" * 5)
    assert describe(bytes(udp)) == "IP 10.0.0.1.5353 > 10.0.0.2.53: UDP len 5"
    ping = Ether() / IP(src="10.0.0.1", dst="10.0.0.2") / ICMP(id=3, seq=4)
    assert describe(bytes(ping)) == "IP 10.0.0.1 > 10.0.0.2: ICMP echo-request id 3 seq 4"


def test_ipv6_is_decoded_not_an_ethertype():
    syn = Ether() / IPv6(src="fd00::1", dst="fd00::2") / TCP(sport=40000, dport=8080, flags="SA", seq=9)
    assert describe(bytes(syn)) == "IP6 fd00::1.40000 > fd00::2.8080: TCP [SA] seq 9 len 0"
    udp = Ether() / IPv6(src="fd00::1", dst="fd00::2") / UDP(sport=1, dport=2) / b"abc"
    assert describe(bytes(udp)) == "IP6 fd00::1.1 > fd00::2.2: UDP len 3"
    ping = Ether() / IPv6(src="fd00::1", dst="fd00::2") / ICMPv6EchoRequest(id=5, seq=6)
    assert describe(bytes(ping)) == "IP6 fd00::1 > fd00::2: ICMP6 echo-request id 5 seq 6"


def test_neighbour_discovery_names_its_target():
    ns = Ether() / IPv6(src="fe80::1", dst="ff02::1:ff00:2") / ICMPv6ND_NS(tgt="fd00::2")
    na = Ether() / IPv6(src="fe80::2", dst="fe80::1") / ICMPv6ND_NA(tgt="fd00::2")
    assert describe(bytes(ns)) == "IP6 fe80::1 > ff02::1:ff00:2: ICMP6 neighbor solicitation, who has fd00::2"
    assert describe(bytes(na)) == "IP6 fe80::2 > fe80::1: ICMP6 neighbor advertisement, tgt is fd00::2"


def test_extension_headers_are_skipped_to_the_transport():
    pkt = Ether() / IPv6(src="fd00::1", dst="fd00::2") / IPv6ExtHdrHopByHop() / UDP(sport=1, dport=2)
    assert describe(bytes(pkt)) == "IP6 fd00::1.1 > fd00::2.2: UDP len 0"


def test_vlan_tag_and_unknown_ethertypes():
    tagged = Ether() / Dot1Q(vlan=5) / IP(src="10.0.0.1", dst="10.0.0.2") / UDP(sport=1, dport=2)
    assert describe(bytes(tagged)) == "IP 10.0.0.1.1 > 10.0.0.2.2: UDP len 0"
    lldp = Ether(type=0x88CC) / (b"\0" * 46)
    assert describe(bytes(lldp)) == "ethertype 0x88cc len 60"
    assert describe(b"\0" * 10) == "runt frame len 10"
