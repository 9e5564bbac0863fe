"""The probe: one packet crafted with scapy (only the inet layers are imported), sent through
a raw socket opened inside the source pod's namespace, so the pod's own routes and
addresses decide where it goes, exactly as for the pod's own traffic."""

from __future__ import annotations

import random
import socket

from scapy.layers.inet import ICMP, IP, TCP, UDP, ICMPerror, IPerror, TCPerror, UDPerror
from scapy.layers.l2 import Ether

import netns
from podnet.debug.nftrace import Flow

PAYLOAD = b"podnet-trace"


def new_flow(proto: str) -> Flow:
    # above the kernel's default ephemeral range (32768-60999), so no socket in the pod owns it
    return Flow(proto, random.randint(61000, 65000) if proto != "icmp" else random.randint(1, 65535))


def build(flow: Flow, src: str, dst: str, dport: int | None, size: int | None = None) -> bytes:
    """The probe, `size` bytes of IP packet when given (padded with payload). DF is always
    set, as every TCP stack sets it: a packet too big for a link is then refused with an
    ICMP "fragmentation needed" that names the MTU, instead of being split silently."""
    ip = IP(src=src, dst=dst, ttl=64, id=random.randint(1, 65535), flags="DF")
    if flow.proto == "tcp":
        pkt = ip / TCP(sport=flow.port, dport=dport, flags="S", seq=random.getrandbits(32), options=[("MSS", 1460)])
    elif flow.proto == "udp":
        pkt = ip / UDP(sport=flow.port, dport=dport) / PAYLOAD
    else:
        pkt = ip / ICMP(type=8, id=flow.port, seq=1) / PAYLOAD
    if size is not None and size > len(pkt):
        pkt = pkt / (b"\0" * (size - len(pkt)))  # a SYN may carry data; the sizes are what matter here
    return bytes(pkt)


def send(netns_path: str | None, data: bytes, dst: str) -> None:
    with netns.socket(netns_path, socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW) as sock:
        sock.sendto(data, (dst, 0))


def dissect(data: bytes):
    """The IP layer of a captured frame, or None."""
    return Ether(data).getlayer(IP)


def relation(ip, flow: Flow) -> str | None:
    """'request', 'reply' or 'error' for packets of the probe's flow; None for others."""
    if flow.proto in ("tcp", "udp"):
        layer = TCP if flow.proto == "tcp" else UDP
        if layer in ip and not isinstance(ip[layer], TCPerror | UDPerror):
            seg = ip[layer]
            if seg.sport == flow.port:
                return "request"
            if seg.dport == flow.port:
                return "reply"
    if ICMP in ip:
        icmp = ip[ICMP]
        if icmp.type in (8, 0) and flow.proto == "icmp" and icmp.id == flow.port:
            return "request" if icmp.type == 8 else "reply"
        if icmp.type in (3, 11) and IPerror in icmp:
            inner = icmp[IPerror]
            for layer in (TCPerror, UDPerror):
                if layer in inner and inner[layer].sport == flow.port:
                    return "error"
            if ICMPerror in inner and inner[ICMPerror].id == flow.port:
                return "error"
    return None
