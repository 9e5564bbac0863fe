"""Every name a lab gives to something it makes, in one place.

All of them start with `podnet-<lab>` and use '.' (which lab names cannot hold) before the
rest, so lab `a` never claims what lab `ab` made, and `lab down` can find everything from
the lab's name alone, even when no state file survived.
"""

from __future__ import annotations

import os

PREFIX = "podnet-"
NETNS_DIR = "/run/netns"
STATE_ROOT = os.environ.get("PODNET_LAB_ROOT", "/run/podnet/labs")
BRIDGE = "podnet-br0"  # the first underlay segment's bridge


def bridge(segment: int) -> str:
    """The bridge of underlay segment `segment` inside the lab namespace."""
    return f"podnet-br{segment}"


def lab_netns(lab: str) -> str:
    """The underlay: the bridge every node plugs into, and the 'outside' clients stand in."""
    return f"{PREFIX}{lab}"


def node_netns(lab: str, node: str) -> str:
    return f"{PREFIX}{lab}.node.{node}"


def pod_netns(lab: str, pod: str) -> str:
    return f"{PREFIX}{lab}.pod.{pod}"


def node_port_link(index: int) -> str:
    """The underlay end of a node's uplink, inside the lab namespace (15 characters at most)."""
    return f"podnet-n{index}"


def container_id(lab: str, pod: str) -> str:
    return f"{PREFIX}{lab}.{pod}"


def state_dir(lab: str) -> str:
    return os.path.join(STATE_ROOT, lab)


def is_lab_netns(lab: str, name: str) -> bool:
    return name == lab_netns(lab) or name.startswith(lab_netns(lab) + ".")


def list_netns() -> list[str]:
    try:
        return sorted(os.listdir(NETNS_DIR))
    except FileNotFoundError:
        return []


def labs_present() -> list[str]:
    """Labs that left a state directory or a namespace behind."""
    found = set()
    if os.path.isdir(STATE_ROOT):
        found.update(os.listdir(STATE_ROOT))
    for name in list_netns():
        if name.startswith(PREFIX) and ".node." in name:
            found.add(name[len(PREFIX) :].split(".", 1)[0])
    return sorted(found)
