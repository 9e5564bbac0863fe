"""One line per packet, tcpdump-like: time, where, direction, then what the packet is."""

from __future__ import annotations

import time

from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.layers.l2 import ARP, Ether

from podnet.debug.capture import Frame

ICMP_TYPES = {0: "echo-reply", 3: "unreachable", 8: "echo-request", 11: "time-exceeded"}
UNREACH = {0: "net", 1: "host", 3: "port", 9: "net-prohibited", 10: "host-prohibited", 13: "admin-prohibited"}


def describe(data: bytes) -> str:
    """What a frame is, without where or when."""
    pkt = Ether(data)
    if ARP in pkt:
        a = pkt[ARP]
        return f"ARP {'who-has' if a.op == 1 else 'is-at'} {a.pdst} tell {a.psrc}"
    if IP not in pkt:
        return f"ethertype 0x{pkt.type:04x} len {len(data)}"
    ip = pkt[IP]
    if TCP in ip:
        t = ip[TCP]
        return f"IP {ip.src}.{t.sport} > {ip.dst}.{t.dport}: TCP [{t.flags}] seq {t.seq} len {len(t.payload)}"
    if UDP in ip:
        u = ip[UDP]
        return f"IP {ip.src}.{u.sport} > {ip.dst}.{u.dport}: UDP len {len(u.payload)}"
    if ICMP in ip:
        return f"IP {ip.src} > {ip.dst}: ICMP {icmp_text(ip[ICMP])}"
    return f"IP {ip.src} > {ip.dst}: proto {ip.proto} len {ip.len}"


def icmp_text(icmp) -> str:
    name = ICMP_TYPES.get(icmp.type, f"type {icmp.type}")
    if icmp.type == 3:
        return f"{UNREACH.get(icmp.code, f'code {icmp.code}')} {name}"
    if icmp.type in (0, 8):
        return f"{name} id {icmp.id} seq {icmp.seq}"
    return name


def line(frame: Frame, with_place: bool = False) -> str:
    sec, ns = divmod(frame.ts_ns, 1_000_000_000)
    stamp = time.strftime("%H:%M:%S", time.localtime(sec)) + f".{ns // 1000:06d}"
    where = f"{frame.place.label} " if with_place else ""
    direction = "out" if frame.outgoing else "in "
    return f"{stamp} {where}{frame.ifname} {direction} {describe(frame.data)}"
