"""One line per packet, tcpdump-like: time, where, direction, then what the packet is.

Decoded with struct, not scapy: a capture prints every packet as it arrives, and scapy's
dissection (about a hundred microseconds a packet) is slower than a burst on a veth, so the
socket's queue would overflow while we print. Scapy crafts the probes; this only reads.
"""

from __future__ import annotations

import socket
import struct
import time

from podnet.debug.capture import Frame

ICMP_TYPES = {0: "echo-reply", 3: "unreachable", 8: "echo-request", 11: "time-exceeded"}
UNREACH = {0: "net", 1: "host", 3: "port", 9: "net-prohibited", 10: "host-prohibited", 13: "admin-prohibited"}
TCP_FLAGS = "FSRPAUEC"  # bit 0 upwards, as scapy and tcpdump name them


_ip = socket.inet_ntoa


def tcp_flags(bits: int) -> str:
    return "".join(f for i, f in enumerate(TCP_FLAGS) if bits & (1 << i))


def describe(data: bytes) -> str:
    """What a frame is, without where or when."""
    if len(data) < 14:
        return f"runt frame len {len(data)}"
    ethertype = struct.unpack_from("!H", data, 12)[0]
    offset = 14
    if ethertype == 0x8100 and len(data) >= 18:  # one VLAN tag
        ethertype, offset = struct.unpack_from("!H", data, 16)[0], 18
    if ethertype == 0x0806 and len(data) >= offset + 28:
        op = struct.unpack_from("!H", data, offset + 6)[0]
        spa, tpa = _ip(data[offset + 14 : offset + 18]), _ip(data[offset + 24 : offset + 28])
        return f"ARP who-has {tpa} tell {spa}" if op == 1 else f"ARP {spa} is-at"
    if ethertype != 0x0800 or len(data) < offset + 20:
        return f"ethertype 0x{ethertype:04x} len {len(data)}"
    return describe_ip(data[offset:])


def describe_ip(ip: bytes) -> str:
    ihl = (ip[0] & 0x0F) * 4
    total, proto = struct.unpack_from("!H", ip, 2)[0], ip[9]
    src, dst = _ip(ip[12:16]), _ip(ip[16:20])
    l4 = ip[ihl:total] if total >= ihl else ip[ihl:]
    if proto == 6 and len(l4) >= 20:
        sport, dport, seq = struct.unpack_from("!HHI", l4)
        off, bits = (l4[12] >> 4) * 4, l4[13] | ((l4[12] & 1) << 8)
        return f"IP {src}.{sport} > {dst}.{dport}: TCP [{tcp_flags(bits)}] seq {seq} len {max(0, len(l4) - off)}"
    if proto == 17 and len(l4) >= 8:
        sport, dport, length = struct.unpack_from("!HHH", l4)
        return f"IP {src}.{sport} > {dst}.{dport}: UDP len {length - 8}"
    if proto == 1 and len(l4) >= 8:
        kind, code = l4[0], l4[1]
        return f"IP {src} > {dst}: ICMP {icmp_text(kind, code, l4)}"
    return f"IP {src} > {dst}: proto {proto} len {total}"


def icmp_text(kind: int, code: int, l4: bytes) -> str:
    name = ICMP_TYPES.get(kind, f"type {kind}")
    if kind == 3:
        return f"{UNREACH.get(code, f'code {code}')} {name}"
    if kind in (0, 8):
        ident, seq = struct.unpack_from("!HH", l4, 4)
        return f"{name} id {ident} seq {seq}"
    return name


def line(frame: Frame, with_place: bool = False) -> str:
    sec, ns = divmod(frame.ts_ns, 1_000_000_000)
    stamp = time.strftime("%H:%M:%S", time.localtime(sec)) + f".{ns // 1000:06d}"
    where = f"{frame.place.label} " if with_place else ""
    direction = "out" if frame.outgoing else "in "
    return f"{stamp} {where}{frame.ifname} {direction} {describe(frame.data)}"
