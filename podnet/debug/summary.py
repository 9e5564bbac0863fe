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
ICMP6_TYPES = {
    1: "unreachable",
    2: "packet-too-big",
    3: "time-exceeded",
    128: "echo-request",
    129: "echo-reply",
    133: "router solicitation",
    134: "router advertisement",
    135: "neighbor solicitation",
    136: "neighbor advertisement",
}
UNREACH6 = {0: "no-route", 1: "admin-prohibited", 3: "address", 4: "port"}
# IPv6 extension headers a packet may carry before its transport header (MLD reports, for
# one, come behind hop-by-hop options); each starts with next-header and a length.
IP6_EXTENSIONS = {0, 43, 60}
IP6_FRAGMENT = 44
TCP_FLAGS = "FSRPAUEC"  # bit 0 upwards, as scapy and tcpdump name them


def _ip(raw: bytes) -> str:
    return socket.inet_ntoa(raw)


def _ip6(raw: bytes) -> str:
    return socket.inet_ntop(socket.AF_INET6, raw)


def _mac(raw: bytes) -> str:
    return ":".join(f"{b:02x}" for b in raw)


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
        return describe_arp(data[offset:])
    if ethertype == 0x0800 and len(data) >= offset + 20:
        return describe_ip(data[offset:])
    if ethertype == 0x86DD and len(data) >= offset + 40:
        return describe_ip6(data[offset:])
    return f"ethertype 0x{ethertype:04x} len {len(data)}"


def describe_arp(arp: bytes) -> str:
    """Requests as tcpdump prints them; replies with the hardware address they answer."""
    op = struct.unpack_from("!H", arp, 6)[0]
    sha, spa, tpa = _mac(arp[8:14]), _ip(arp[14:18]), _ip(arp[24:28])
    if op == 1:
        return f"ARP who-has {tpa} tell {spa}"
    if op == 2:
        return f"ARP {spa} is-at {sha}"
    return f"ARP op {op} {spa} > {tpa}"


def describe_ip(ip: bytes) -> str:
    ihl = (ip[0] & 0x0F) * 4
    total, proto = struct.unpack_from("!H", ip, 2)[0], ip[9]
    src, dst = _ip(ip[12:16]), _ip(ip[16:20])
    l4 = ip[ihl:total] if total >= ihl else ip[ihl:]
    return _transport("IP", src, dst, proto, l4) or f"IP {src} > {dst}: proto {proto} len {total}"


def describe_ip6(ip: bytes) -> str:
    payload_len, proto = struct.unpack_from("!HB", ip, 4)
    src, dst = _ip6(ip[8:24]), _ip6(ip[24:40])
    rest = ip[40 : 40 + payload_len]
    while proto in IP6_EXTENSIONS and len(rest) >= 8:
        proto, rest = rest[0], rest[(rest[1] + 1) * 8 :]
    if proto == IP6_FRAGMENT and len(rest) >= 8:
        offset = struct.unpack_from("!H", rest, 2)[0] >> 3
        if offset:  # a later fragment carries no transport header to decode
            return f"IP6 {src} > {dst}: frag offset {offset * 8} len {len(rest) - 8}"
        proto, rest = rest[0], rest[8:]
    return _transport("IP6", src, dst, proto, rest) or f"IP6 {src} > {dst}: next-header {proto} len {payload_len}"


def _transport(family: str, src: str, dst: str, proto: int, l4: bytes) -> str | None:
    """The transport part, shared by both families (IPv6 joins address and port with a dot
    too, as tcpdump does)."""
    if proto == 6 and len(l4) >= 20:
        sport, dport, seq = struct.unpack_from("!HHI", l4)
        off, bits = (l4[12] >> 4) * 4, l4[13] | ((l4[12] & 1) << 8)
        return f"{family} {src}.{sport} > {dst}.{dport}: TCP [{tcp_flags(bits)}] seq {seq} len {max(0, len(l4) - off)}"
    if proto == 17 and len(l4) >= 8:
        sport, dport, length = struct.unpack_from("!HHH", l4)
        return f"{family} {src}.{sport} > {dst}.{dport}: UDP len {length - 8}"
    if proto == 1 and len(l4) >= 8:
        return f"{family} {src} > {dst}: ICMP {icmp_text(l4[0], l4[1], l4)}"
    if proto == 58 and len(l4) >= 8:
        return f"{family} {src} > {dst}: ICMP6 {icmp6_text(l4[0], l4[1], l4)}"
    return None


def icmp_text(kind: int, code: int, l4: bytes) -> str:
    name = ICMP_TYPES.get(kind, f"type {kind}")
    if kind == 3:
        return f"{UNREACH.get(code, f'code {code}')} {name}"
    if kind in (0, 8):
        ident, seq = struct.unpack_from("!HH", l4, 4)
        return f"{name} id {ident} seq {seq}"
    return name


def icmp6_text(kind: int, code: int, l4: bytes) -> str:
    name = ICMP6_TYPES.get(kind, f"type {kind}")
    if kind == 1:
        return f"{UNREACH6.get(code, f'code {code}')} {name}"
    if kind in (128, 129):
        ident, seq = struct.unpack_from("!HH", l4, 4)
        return f"{name} id {ident} seq {seq}"
    if kind in (135, 136) and len(l4) >= 24:  # the target address follows 4 reserved bytes
        target = _ip6(l4[8:24])
        return f"{name}, who has {target}" if kind == 135 else f"{name}, tgt is {target}"
    return name


def record(frame: Frame) -> dict[str, object]:
    """One packet as data, for `capture -o json`."""
    return {
        "ts": frame.ts_ns / 1e9,
        "place": frame.place.label,
        "ifname": frame.ifname,
        "direction": "out" if frame.outgoing else "in",
        "packet": describe(frame.data),
        "len": len(frame.data),
    }


def line(frame: Frame, with_place: bool = False) -> str:
    sec, ns = divmod(frame.ts_ns, 1_000_000_000)
    stamp = time.strftime("%H:%M:%S", time.localtime(sec)) + f".{ns // 1000:06d}"
    where = f"{frame.place.label} " if with_place else ""
    direction = "out" if frame.outgoing else "in "
    return f"{stamp} {where}{frame.ifname} {direction} {describe(frame.data)}"
