"""Routed pod networking, as in ptp and Calico: no bridge, no NAT.

The pod holds its address as a host route (/32, /128) and sends everything to a
link-local next hop that is the host end of its veth. The host holds a route to each pod
address through that pod's veth and forwards between them. A permanent neighbour entry in
the pod maps the next hop to the host end's MAC, so nothing depends on proxy ARP or on the
node having a default route.
"""

from __future__ import annotations

import errno
import ipaddress

from cni.errors import InvalidConfig
from cni.netlink import RT_SCOPE_LINK, Netlink
from cni.veth import VethPair

GATEWAY_V4 = ipaddress.IPv4Address("169.254.1.1")
DEFAULT = {4: ipaddress.ip_network("0.0.0.0/0"), 6: ipaddress.ip_network("::/0")}
_FORWARDING = {4: "/proc/sys/net/ipv4/ip_forward", 6: "/proc/sys/net/ipv6/conf/all/forwarding"}


def link_local_v6(mac: str) -> ipaddress.IPv6Address:
    """The EUI-64 link-local address the kernel gives a link with this MAC."""
    b = bytearray(bytes.fromhex(mac.replace(":", "")))
    b[0] ^= 0x02
    eui = bytes(b[:3]) + b"\xff\xfe" + bytes(b[3:])
    return ipaddress.IPv6Address(b"\xfe\x80" + b"\0" * 6 + eui)


def gateway_for(version: int, pair: VethPair):
    return GATEWAY_V4 if version == 4 else link_local_v6(pair.host.mac)


def host_route(ip) -> ipaddress.IPv4Interface | ipaddress.IPv6Interface:
    ip = ipaddress.ip_address(ip)
    return ipaddress.ip_interface((ip, ip.max_prefixlen))


def setup_pod(pod: Netlink, pair: VethPair, ips, extra_routes) -> None:
    """Address the pod, point its default route (and any IPAM routes) at the host end."""
    index = pair.pod.index
    pod.set_up(index)
    versions = sorted({ip.version for ip in ips})
    for ip in ips:
        pod.add_address(index, host_route(ip))
    for v in versions:
        gw = gateway_for(v, pair)
        pod.add_permanent_neighbour(index, gw, pair.host.mac)
        if v == 4:
            # The next hop is not inside any pod subnet: reach it on the link itself.
            pod.add_route(ipaddress.ip_network(f"{gw}/32"), index, scope=RT_SCOPE_LINK)
        pod.add_route(DEFAULT[v], index, gateway=gw)
    for route in extra_routes:
        if route.dst.prefixlen == 0:
            continue  # the default route already goes to the host end
        gw = route.gw or gateway_for(route.dst.version, pair)
        try:
            pod.add_route(route.dst, index, gateway=gw, replace=True)
        except OSError as e:
            if e.errno not in (errno.ENETUNREACH, errno.EHOSTUNREACH, errno.EINVAL):
                raise
            # the pod's only neighbour is the host end: any other next hop is unreachable
            raise InvalidConfig(
                f"ipam.routes: gateway {gw} for {route.dst} is not reachable from the pod ({e.strerror})",
                f"leave gw out, or use {gateway_for(route.dst.version, pair)}",
            ) from None


def setup_host(host: Netlink, pair: VethPair, ips) -> None:
    """Route each pod address to the pod's veth (brought up when it was made) and forward."""
    for ip in ips:
        host.add_route(host_route(ip).network, pair.host.index, scope=RT_SCOPE_LINK, replace=True)
    for v in sorted({ip.version for ip in ips}):
        enable_forwarding(v)


def enable_forwarding(version: int) -> None:
    path = _FORWARDING[version]
    with open(path, "r+") as f:
        if f.read().strip() != "1":
            f.seek(0)
            f.write("1\n")


# Where the node's traffic to the world leaves; no packet is sent, the kernel only looks up
# the route (the default route, if there is one).
_WORLD = ("192.0.2.1", "2001:db8::1")


def uplink_mtu(host: Netlink, default: int = 1500) -> int:
    """The MTU of the link that holds the node's default route."""
    for dst in _WORLD:
        route = host.route_to(dst)
        if route is not None and route.oif:
            link = host.get_link(index=route.oif)
            if link is not None:
                return link.mtu
    return default
