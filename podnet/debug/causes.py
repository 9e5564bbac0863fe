"""The causes trace names, and how each piece of evidence maps to one. Pure: no namespace,
no process, so every mapping is tested without root.

A cause is a short stable word (for -o json and for probe's cells); the verdict's detail
says it for a person.
"""

from __future__ import annotations

import errno

# What each kernel drop reason (enum skb_drop_reason) means for a probe.
KERNEL_CAUSES = {
    "NETFILTER_DROP": "rule-drop",
    "IP_RPFILTER": "rp-filter",
    "IP_INVALID_SOURCE": "martian-source",
    "IP_LOCAL_SOURCE": "martian-source",
    "IP_LOCALNET": "martian-source",
    "IP_INVALID_DEST": "martian-destination",
    "IP_INNOROUTES": "no-route",
    "IP_OUTNOROUTES": "no-route",
    "IP_INADDRERRORS": "no-route",
    "NEIGH_FAILED": "neighbour-unresolved",
    "NEIGH_QUEUEFULL": "neighbour-unresolved",
    "NEIGH_DEAD": "neighbour-unresolved",
    "NEIGH_CREATEFAIL": "neighbour-unresolved",
    "PKT_TOO_BIG": "mtu",
    "NO_SOCKET": "port-closed",
    "DEV_READY": "interface-down",
    "NO_TX_TARGET": "interface-down",
}

CAUSE_WORDS = {
    "rule-drop": "a netfilter rule dropped it",
    "network-policy": "a NetworkPolicy isolates the pod and none allows it",
    "rp-filter": "reverse-path filtering (rp_filter) dropped it",
    "martian-source": "its source address is martian there",
    "martian-destination": "its destination address is martian there",
    "no-route": "no route",
    "neighbour-unresolved": "the next hop's address never resolved (no ARP answer)",
    "mtu": "larger than the path's MTU, with DF set",
    "port-closed": "nothing listens on the port",
    "interface-down": "an interface on the way is down",
}


def kernel_cause(reason: str) -> str | None:
    return KERNEL_CAUSES.get(reason)


def route_error_cause(error: str) -> str:
    """`ip route get DST from SRC iif DEV` fails the way the kernel's input routing fails:
    EXDEV is reverse-path filtering, EINVAL a martian source, the rest no route."""
    low = error.lower()
    if "cross-device" in low or "rp_filter" in low:
        return "rp-filter"
    if "invalid argument" in low or "martian" in low:
        return "martian-source"
    return "no-route"


def send_error_cause(code: int | None) -> str:
    """What the source pod's own kernel refused at sendto()."""
    if code == errno.EMSGSIZE:
        return "mtu"
    if code in (errno.ENETDOWN, errno.ENODEV, errno.ENXIO):
        return "interface-down"
    if code in (errno.EPERM, errno.EACCES):
        return "rule-drop"  # an OUTPUT rule in the pod dropped it (EPERM is what NF_DROP gives)
    return "no-route"


def icmp_cause(icmp_type: int, code: int) -> str:
    """An ICMP error that came back for the probe and that no traced rule sent."""
    if icmp_type == 3:
        if code == 4:
            return "mtu"
        if code == 3:
            return "port-closed"
        if code in (9, 10, 13):
            return "rule-reject"
        return "no-route"
    if icmp_type == 11:
        return "ttl-exceeded"
    return "icmp-error"


def neighbour_unresolved(entries: list[dict]) -> str | None:
    """The state of a next hop that cannot be reached on its link, from `ip -j neigh`."""
    for e in entries:
        states = e.get("state", [])
        for s in ("FAILED", "INCOMPLETE"):
            if s in states:
                return s
    return None
