"""The pod's veth pair: names, creation with the peer born in the pod, removal."""

from __future__ import annotations

# sha256 from the interpreter's own module, not hashlib: hashlib loads OpenSSL's libcrypto,
# a good share of a plugin's start, for the same digest (names stay as they were).
try:
    from _sha256 import sha256  # type: ignore[import-not-found]
except ImportError:  # Python 3.12 and later
    from _sha2 import sha256  # type: ignore[import-not-found]

from cni.netlink import Link, Netlink
from ipam.value import Value

TYPE_CHECKING = False  # the type checker treats this name as true; typing is not imported
if TYPE_CHECKING:
    from typing import Final

PREFIX = "pn"
MAX_ALIAS = 255  # IFALIASZ (256) less the NUL


def host_name(container_id: str, ifname: str) -> str:
    """A stable host-side name, at most 15 characters, from the container id and ifname.

    DEL and GC find the link again from the same inputs, without any saved state.
    """
    return PREFIX + short_digest(f"{container_id}/{ifname}")


def short_digest(text: str) -> str:
    """The first 12 hex digits of text's SHA-256: podnet's names for a pod's links and chains."""
    return sha256(text.encode()).hexdigest()[:12]


def alias(network: str, container_id: str, ifname: str) -> str:
    """Written on the host side so GC can tell podnet's veths, and their owner, apart."""
    return f"podnet {network} {container_id} {ifname}"


def parse_alias(text: str) -> tuple[str, str, str] | None:
    parts = text.split(" ")
    if len(parts) != 4 or parts[0] != "podnet":
        return None
    return parts[1], parts[2], parts[3]


class VethPair(Value):
    """The two ends of a pod's veth: one on the node, one in the pod. (A plain class, as
    every value type on the ADD path: see cni/netlink.py's Link.)"""

    __slots__ = ("host", "pod")

    def __init__(self, host: Link, pod: Link) -> None:
        self.host: Final = host
        self.pod: Final = pod


def skip_dad(host_ifname: str) -> None:
    """No duplicate address detection on the host end, set before the link goes up. Its
    link-local address would otherwise stay tentative for a second or two, and while it is the
    kernel sends no neighbour solicitation for an IPv6 packet it forwards into the pod (it needs
    a usable link-local source), so a new pod's first IPv6 packets from elsewhere are lost. The
    only other address on this link is the pod's, made from another MAC: nothing to detect."""
    try:
        with open(f"/proc/sys/net/ipv6/conf/{host_ifname}/accept_dad", "w") as f:
            f.write("0\n")
    except FileNotFoundError:
        pass  # IPv6 is disabled on this node


def create(
    host: Netlink, pod: Netlink, pod_netns_fd: int, host_ifname: str, ifname: str, mtu: int, tag: str
) -> VethPair:
    host.add_veth(host_ifname, ifname, pod_netns_fd, mtu)
    skip_dad(host_ifname)
    host.set_up_with_alias(host_ifname, tag)
    host_link = host.get_link(host_ifname)
    pod_link = pod.get_link(ifname)
    if host_link is None or pod_link is None:
        raise OSError(f"veth {host_ifname}/{ifname} vanished right after creation")
    return VethPair(host_link, pod_link)
