"""A minimal rtnetlink client: just the messages one pod ADD/DEL/CHECK needs.

Why not pyroute2 here: the plugin is a fresh process per pod, and importing pyroute2
costs about 180 ms, against a reference ADD of about 12 ms. pyroute2 is used only where
its generic-netlink families earn the import: the proxy's IPVS mode (proxy/ipvs/); labs
and tests run iproute2's `ip`. This module stays small and only speaks the handful of
requests below. A socket stays bound to the network namespace it was opened in, so one
socket per namespace is opened once and handed to every step.
"""

from __future__ import annotations

# The C module, not socket.py: its wrapper's imports (selectors, enum conversions) cost
# every standalone plugin start and offer nothing a netlink socket uses.
import _socket
import errno
import ipaddress
import os
import struct

from ipam.value import Value

# linux/netlink.h
NLM_F_REQUEST, NLM_F_ACK, NLM_F_DUMP = 0x1, 0x4, 0x300
NLM_F_REPLACE, NLM_F_EXCL, NLM_F_CREATE = 0x100, 0x200, 0x400
NLMSG_ERROR, NLMSG_DONE = 2, 3
NLA_F_NESTED = 0x8000
# linux/rtnetlink.h
RTM_NEWLINK, RTM_DELLINK, RTM_GETLINK, RTM_SETLINK = 16, 17, 18, 19
RTM_NEWADDR, RTM_GETADDR = 20, 22
RTM_NEWROUTE, RTM_DELROUTE, RTM_GETROUTE = 24, 25, 26
RTM_NEWNEIGH = 28
# linux/if_link.h
IFLA_ADDRESS, IFLA_IFNAME, IFLA_MTU, IFLA_LINK = 1, 3, 4, 5
IFLA_LINKINFO, IFLA_NET_NS_FD, IFLA_IFALIAS = 18, 28, 20
IFLA_INFO_KIND, IFLA_INFO_DATA = 1, 2
VETH_INFO_PEER = 1
IFF_UP = 0x1
# linux/if_addr.h
IFA_ADDRESS, IFA_LOCAL, IFA_FLAGS = 1, 2, 8
IFA_F_NODAD = 0x02
# routes
RTA_DST, RTA_OIF, RTA_GATEWAY, RTA_TABLE = 1, 4, 5, 15
RT_TABLE_MAIN = 254
RTPROT_BOOT = 3
RT_SCOPE_UNIVERSE, RT_SCOPE_LINK = 0, 253
RTN_UNICAST = 1
# neighbours
NDA_DST, NDA_LLADDR = 1, 2
NUD_PERMANENT = 0x80

_NLMSGHDR = struct.Struct("=IHHII")
_IFINFOMSG = struct.Struct("=BxHiII")
_IFADDRMSG = struct.Struct("=BBBBI")
_RTMSG = struct.Struct("=BBBBBBBBI")
_NDMSG = struct.Struct("=BxxxiHBB")
_NLATTR = struct.Struct("=HH")


def _align(n: int) -> int:
    return (n + 3) & ~3


def attr(kind: int, data: bytes) -> bytes:
    raw = _NLATTR.pack(_NLATTR.size + len(data), kind) + data
    return raw + b"\0" * (_align(len(raw)) - len(raw))


def nested(kind: int, *attrs: bytes) -> bytes:
    return attr(kind | NLA_F_NESTED, b"".join(attrs))


def attr_str(kind: int, value: str) -> bytes:
    return attr(kind, value.encode() + b"\0")


def attr_u32(kind: int, value: int) -> bytes:
    return attr(kind, struct.pack("=I", value))


def parse_attrs(data: bytes) -> dict[int, bytes]:
    out = {}
    offset = 0
    while offset + _NLATTR.size <= len(data):
        length, kind = _NLATTR.unpack_from(data, offset)
        if length < _NLATTR.size:
            break
        out[kind & ~NLA_F_NESTED] = data[offset + _NLATTR.size : offset + length]
        offset += _align(length)
    return out


def _family(addr) -> int:
    return _socket.AF_INET6 if addr.version == 6 else _socket.AF_INET


def mac_str(raw: bytes) -> str:
    return ":".join(f"{b:02x}" for b in raw)


# The value types on the standalone plugin's ADD path (these, cni.config's, cni.skel's,
# cni.veth's and ipam's config, ranges, store_url and pool) are plain classes, not
# dataclasses: a runtime starts the plugin once per pod, and importing dataclasses (it
# imports inspect, and that ast, dis, tokenize, enum...) costs that start more than all
# podnet's own modules. `Final` keeps them frozen for the type checker, and Value gives
# them a dataclass's equality, hash and repr.
TYPE_CHECKING = False  # the type checker treats this name as true; typing is not imported
if TYPE_CHECKING:
    from typing import Final


class Link(Value):
    """A network interface as the kernel reports it."""

    __slots__ = ("index", "name", "mac", "mtu", "up", "alias")

    def __init__(self, index: int, name: str, mac: str, mtu: int, up: bool, alias: str = "") -> None:
        self.index: Final = index
        self.name: Final = name
        self.mac: Final = mac
        self.mtu: Final = mtu
        self.up: Final = up
        self.alias: Final = alias


class Route(Value):
    """A route as the kernel reports it."""

    __slots__ = ("dst", "gateway", "oif")

    def __init__(self, dst: ipaddress.IPv4Network | ipaddress.IPv6Network, gateway: str | None, oif: int) -> None:
        self.dst: Final = dst
        self.gateway: Final = gateway
        self.oif: Final = oif


class Netlink:
    """One NETLINK_ROUTE socket, bound to the namespace current when it was opened."""

    def __init__(self) -> None:
        self._sock = _socket.socket(_socket.AF_NETLINK, _socket.SOCK_RAW, 0)
        self._sock.bind((0, 0))
        self._seq = 0

    def close(self) -> None:
        self._sock.close()

    def __enter__(self) -> Netlink:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- transport --------------------------------------------------------------------
    def _send(self, msg_type: int, flags: int, payload: bytes) -> int:
        self._seq += 1
        header = _NLMSGHDR.pack(_NLMSGHDR.size + len(payload), msg_type, flags | NLM_F_REQUEST, self._seq, 0)
        self._sock.send(header + payload)
        return self._seq

    def _replies(self, seq: int):
        """Yield (type, payload) of each reply to `seq` until ACK/DONE; raise OSError on error."""
        while True:
            data = self._sock.recv(1 << 16)
            offset = 0
            while offset < len(data):
                length, msg_type, _flags, msg_seq, _pid = _NLMSGHDR.unpack_from(data, offset)
                payload = data[offset + _NLMSGHDR.size : offset + length]
                offset += _align(length)
                if msg_seq != seq:
                    continue
                if msg_type == NLMSG_DONE:
                    return
                if msg_type == NLMSG_ERROR:
                    code = -struct.unpack_from("=i", payload)[0]
                    if code:
                        raise OSError(code, os.strerror(code))
                    return
                yield msg_type, payload

    def request(self, msg_type: int, payload: bytes, flags: int = 0) -> None:
        for _ in self._replies(self._send(msg_type, flags | NLM_F_ACK, payload)):
            pass

    def dump(self, msg_type: int, payload: bytes) -> list[bytes]:
        return [p for _, p in self._replies(self._send(msg_type, NLM_F_DUMP, payload))]

    # -- links ------------------------------------------------------------------------
    def add_veth(self, name: str, peer: str, peer_netns_fd: int, mtu: int) -> None:
        """Create a veth pair whose peer is born inside the namespace of `peer_netns_fd`.

        One request: moving a link between namespaces afterwards is the most expensive step
        of an ADD, so the peer never exists on the host side at all.
        """
        peer_info = (
            _IFINFOMSG.pack(0, 0, 0, 0, 0)
            + attr_str(IFLA_IFNAME, peer)
            + attr_u32(IFLA_NET_NS_FD, peer_netns_fd)
            + attr_u32(IFLA_MTU, mtu)
        )
        linkinfo = nested(
            IFLA_LINKINFO,
            attr_str(IFLA_INFO_KIND, "veth"),
            nested(IFLA_INFO_DATA, attr(VETH_INFO_PEER, peer_info)),
        )
        attrs = attr_str(IFLA_IFNAME, name) + attr_u32(IFLA_MTU, mtu) + linkinfo
        self.request(RTM_NEWLINK, _IFINFOMSG.pack(0, 0, 0, 0, 0) + attrs, NLM_F_CREATE | NLM_F_EXCL)

    def get_link(self, name: str = "", index: int = 0) -> Link | None:
        """One link, by name or by index; None when there is no such link."""
        msg = _IFINFOMSG.pack(0, 0, index, 0, 0) + (attr_str(IFLA_IFNAME, name) if name else b"")
        try:
            replies = [p for _, p in self._replies(self._send(RTM_GETLINK, NLM_F_ACK, msg))]
        except OSError as e:
            if e.errno == errno.ENODEV:
                return None
            raise
        return _parse_link(replies[0]) if replies else None

    def links(self) -> list[Link]:
        return [_parse_link(p) for p in self.dump(RTM_GETLINK, _IFINFOMSG.pack(0, 0, 0, 0, 0))]

    def set_up(self, index: int) -> None:
        self.request(RTM_NEWLINK, _IFINFOMSG.pack(0, 0, index, IFF_UP, IFF_UP))

    def set_up_with_alias(self, name: str, alias: str) -> None:
        """Bring a link up and label it, in one request (the kernel ignores an alias at creation)."""
        msg = _IFINFOMSG.pack(0, 0, 0, IFF_UP, IFF_UP) + attr_str(IFLA_IFNAME, name) + attr_str(IFLA_IFALIAS, alias)
        self.request(RTM_NEWLINK, msg)

    def del_link(self, name: str) -> bool:
        """Delete a link by name; False when it did not exist."""
        try:
            self.request(RTM_DELLINK, _IFINFOMSG.pack(0, 0, 0, 0, 0) + attr_str(IFLA_IFNAME, name))
        except OSError as e:
            if e.errno == errno.ENODEV:
                return False
            raise
        return True

    # -- addresses --------------------------------------------------------------------
    def add_address(self, index: int, iface: ipaddress.IPv4Interface | ipaddress.IPv6Interface) -> None:
        packed = iface.ip.packed
        flags = IFA_F_NODAD if iface.version == 6 else 0
        msg = _IFADDRMSG.pack(_family(iface), iface.network.prefixlen, flags, RT_SCOPE_UNIVERSE, index)
        msg += attr(IFA_LOCAL, packed) + attr(IFA_ADDRESS, packed) + attr_u32(IFA_FLAGS, flags)
        self.request(RTM_NEWADDR, msg, NLM_F_CREATE | NLM_F_EXCL)

    def addresses(self, index: int) -> list[ipaddress.IPv4Interface | ipaddress.IPv6Interface]:
        out = []
        for payload in self.dump(RTM_GETADDR, _IFADDRMSG.pack(0, 0, 0, 0, 0)):
            family, prefixlen, _flags, _scope, ifindex = _IFADDRMSG.unpack_from(payload)
            if ifindex != index:
                continue
            attrs = parse_attrs(payload[_IFADDRMSG.size :])
            raw = attrs.get(IFA_LOCAL) or attrs.get(IFA_ADDRESS)
            if raw:
                out.append(ipaddress.ip_interface((ipaddress.ip_address(raw), prefixlen)))
        return out

    # -- routes -----------------------------------------------------------------------
    def add_route(self, dst, oif: int, gateway=None, scope: int = RT_SCOPE_UNIVERSE, replace: bool = False) -> None:
        dst = ipaddress.ip_network(dst)
        msg = _RTMSG.pack(_family(dst), dst.prefixlen, 0, 0, RT_TABLE_MAIN, RTPROT_BOOT, scope, RTN_UNICAST, 0)
        if dst.prefixlen:
            msg += attr(RTA_DST, dst.network_address.packed)
        msg += attr_u32(RTA_OIF, oif)
        if gateway is not None:
            msg += attr(RTA_GATEWAY, ipaddress.ip_address(gateway).packed)
        flags = NLM_F_CREATE | (NLM_F_REPLACE if replace else NLM_F_EXCL)
        self.request(RTM_NEWROUTE, msg, flags)

    def routes(self, family: int) -> list[Route]:
        out = []
        for payload in self.dump(RTM_GETROUTE, _RTMSG.pack(family, 0, 0, 0, 0, 0, 0, 0, 0)):
            fam, dst_len, _s, _t, table, _p, _sc, rtype, _f = _RTMSG.unpack_from(payload)
            attrs = parse_attrs(payload[_RTMSG.size :])
            table_id = struct.unpack("=I", attrs[RTA_TABLE])[0] if RTA_TABLE in attrs else table
            if rtype != RTN_UNICAST or table_id != RT_TABLE_MAIN:
                continue
            zero = b"\0" * (16 if fam == _socket.AF_INET6 else 4)
            dst = ipaddress.ip_network((ipaddress.ip_address(attrs.get(RTA_DST, zero)), dst_len))
            gw = attrs.get(RTA_GATEWAY)
            oif = struct.unpack("=I", attrs[RTA_OIF])[0] if RTA_OIF in attrs else 0
            out.append(Route(dst, str(ipaddress.ip_address(gw)) if gw else None, oif))
        return out

    def route_to(self, dst) -> Route | None:
        """The route the kernel would use towards `dst` (as `ip route get`), or None."""
        dst = ipaddress.ip_address(dst)
        msg = _RTMSG.pack(_family(dst), dst.max_prefixlen, 0, 0, 0, 0, 0, 0, 0) + attr(RTA_DST, dst.packed)
        try:
            replies = [p for _, p in self._replies(self._send(RTM_GETROUTE, NLM_F_ACK, msg))]
        except OSError as e:
            if e.errno in (errno.ENETUNREACH, errno.EHOSTUNREACH):
                return None
            raise
        if not replies or _RTMSG.unpack_from(replies[0])[7] != RTN_UNICAST:
            return None  # no route, or a local address of this node
        attrs = parse_attrs(replies[0][_RTMSG.size :])
        gw = attrs.get(RTA_GATEWAY)
        oif = struct.unpack("=I", attrs[RTA_OIF])[0] if RTA_OIF in attrs else 0
        return Route(ipaddress.ip_network(dst), str(ipaddress.ip_address(gw)) if gw else None, oif)

    # -- neighbours -------------------------------------------------------------------
    def add_permanent_neighbour(self, index: int, ip, mac: str) -> None:
        ip = ipaddress.ip_address(ip)
        msg = _NDMSG.pack(_family(ip), index, NUD_PERMANENT, 0, 0)
        msg += attr(NDA_DST, ip.packed) + attr(NDA_LLADDR, bytes.fromhex(mac.replace(":", "")))
        self.request(RTM_NEWNEIGH, msg, NLM_F_CREATE | NLM_F_REPLACE)


def _parse_link(payload: bytes) -> Link:
    _family_, _type, index, flags, _change = _IFINFOMSG.unpack_from(payload)
    attrs = parse_attrs(payload[_IFINFOMSG.size :])
    return Link(
        index=index,
        name=attrs.get(IFLA_IFNAME, b"").rstrip(b"\0").decode(),
        mac=mac_str(attrs.get(IFLA_ADDRESS, b"")),
        mtu=struct.unpack("=I", attrs[IFLA_MTU])[0] if IFLA_MTU in attrs else 0,
        up=bool(flags & IFF_UP),
        alias=attrs.get(IFLA_IFALIAS, b"").rstrip(b"\0").decode(),
    )
