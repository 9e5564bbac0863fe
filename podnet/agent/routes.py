"""Routes to the other nodes' pod subnets, kept equal to their lease records.

host-gw: `<subnet> via <node IP>` (nodes share one L2 segment).
vxlan:   a `podnet.1` VXLAN device (VNI 1, UDP 8472, no learning, MTU 50 below the uplink);
         per other node: an FDB entry (its VTEP MAC -> its underlay IP), a permanent
         neighbour (its subnet's network address -> its VTEP MAC) and
         `<subnet> via <its subnet's network address> dev podnet.1 onlink`, so the
         underlay may be routed (nodes on different subnets).

Every route the agent makes carries protocol number RTPROT_PODNET, and only routes with it
are ever changed or removed; FDB and neighbour entries live on podnet.1, which is the
agent's own. A sync is a reconciliation (what is there against what should be), so the
first one after a start removes stale routes and a repeated one changes nothing.
"""

from __future__ import annotations

import hashlib
import ipaddress
import logging
import socket
import threading

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

from podnet.agent.subnet import NodeRecord

log = logging.getLogger("podnet.agent")

RTPROT_PODNET = 151  # unassigned in iproute2's rt_protos; marks the agent's routes as its own
VXLAN_DEV = "podnet.1"
VXLAN_VNI = 1
VXLAN_PORT = 8472  # the Linux kernel's and flannel's default
VXLAN_OVERHEAD = 50
NUD_PERMANENT = 0x80
NTF_SELF = 0x02  # an FDB entry of the VXLAN device itself (not of a bridge master)
RTNH_F_ONLINK = 4


def vtep_mac(node: str) -> str:
    """A stable, locally administered MAC for this node's VTEP (the same after a restart)."""
    raw = bytearray(hashlib.sha256(f"podnet-vtep/{node}".encode()).digest()[:6])
    raw[0] = (raw[0] & 0xFE) | 0x02
    return ":".join(f"{b:02x}" for b in raw)


def gateway_of(subnet: str) -> str:
    """The address that stands for a node's subnet on podnet.1 (its network address, as flannel)."""
    return str(ipaddress.ip_network(subnet).network_address)


class Routes:
    def __init__(self, node: str, backend: str, node_ips: tuple[str, ...]) -> None:
        self.node, self.backend, self.node_ips = node, backend, node_ips
        self.ipr = IPRoute()
        self.lock = threading.Lock()
        self.vxlan_index = 0
        self.mac = ""
        self.mtu = 0  # the pods' MTU (0: the runtime's default)
        self.in_sync = False
        self.failures = 0

    def close(self) -> None:
        self.ipr.close()

    def _uplink(self, ip: str) -> tuple[int, int]:
        """(index, MTU) of the link that holds `ip`."""
        for addr in self.ipr.get_addr():
            if addr.get_attr("IFA_ADDRESS") == ip or addr.get_attr("IFA_LOCAL") == ip:
                link = self.ipr.get_links(addr["index"])[0]
                return addr["index"], link.get_attr("IFLA_MTU")
        raise RuntimeError(f"--node-ip {ip}: no link in this network namespace holds it")

    def prepare(self, own_subnets: list[str]) -> None:
        """Make (or keep) what routes need before any record is published: podnet.1 for vxlan."""
        v4 = next((ip for ip in self.node_ips if ipaddress.ip_address(ip).version == 4), None)
        if v4 is None:
            raise RuntimeError("the agent needs an IPv4 --node-ip (routes and VTEPs use it)")
        uplink, uplink_mtu = self._uplink(v4)
        if self.backend != "vxlan":
            return
        self.mac = vtep_mac(self.node)
        self.mtu = uplink_mtu - VXLAN_OVERHEAD
        found = self.ipr.link_lookup(ifname=VXLAN_DEV)
        if found:
            link = self.ipr.get_links(found[0])[0]
            info = link.get_attr("IFLA_LINKINFO")
            data = info.get_attr("IFLA_INFO_DATA") if info else None
            same = (
                data is not None
                and data.get_attr("IFLA_VXLAN_LOCAL") == v4
                and data.get_attr("IFLA_VXLAN_LINK") == uplink
            )
            if not same:  # made for another address (the node moved): made anew
                self.ipr.link("del", index=found[0])
                found = []
        if not found:
            self.ipr.link("add", ifname=VXLAN_DEV, kind="vxlan", vxlan_id=VXLAN_VNI, vxlan_local=v4,
                          vxlan_link=uplink, vxlan_port=VXLAN_PORT, vxlan_learning=0)  # fmt: skip
        self.vxlan_index = self.ipr.link_lookup(ifname=VXLAN_DEV)[0]
        self.ipr.link("set", index=self.vxlan_index, address=self.mac, mtu=self.mtu, state="up")
        for subnet in own_subnets:
            if ipaddress.ip_network(subnet).version == 4:
                self.ipr.addr("replace", index=self.vxlan_index, address=gateway_of(subnet), prefixlen=32)

    def desired(self, records: dict[str, NodeRecord]) -> dict[str, dict]:
        """dst -> route attributes, for every other node's subnets."""
        out: dict[str, dict] = {}
        for name, rec in sorted(records.items()):
            if name == self.node:
                continue
            for subnet in rec.subnets:
                net = ipaddress.ip_network(subnet)
                if self.backend == "vxlan":
                    if net.version != 4 or not rec.vtep_mac or not self.vxlan_index:
                        continue
                    out[subnet] = {"gateway": gateway_of(subnet), "oif": self.vxlan_index, "onlink": True}
                else:
                    via = next((ip for ip in rec.node_ips if ipaddress.ip_address(ip).version == net.version), None)
                    if via is not None:
                        out[subnet] = {"gateway": via}
        return out

    def ours(self) -> dict[str, dict]:
        """The routes in the kernel that carry podnet's protocol number."""
        out = {}
        for family in (socket.AF_INET, socket.AF_INET6):
            for r in self.ipr.get_routes(family=family, table=254):
                if r["proto"] != RTPROT_PODNET:
                    continue
                dst = f"{r.get_attr('RTA_DST')}/{r['dst_len']}"
                out[dst] = {"gateway": r.get_attr("RTA_GATEWAY"), "oif": r.get_attr("RTA_OIF"),
                            "onlink": bool(r["flags"] & RTNH_F_ONLINK)}  # fmt: skip
        return out

    def sync(self, records: dict[str, NodeRecord]) -> None:
        with self.lock:
            try:
                self._sync(records)
                self.in_sync = True
            except (NetlinkError, OSError) as e:
                self.in_sync = False
                self.failures += 1
                log.error("routes not in sync: %s", e)

    def _sync(self, records: dict[str, NodeRecord]) -> None:
        want = self.desired(records)
        have = self.ours()
        if self.backend == "vxlan" and self.vxlan_index:
            self._sync_vxlan(records, want)
        for dst in sorted(have.keys() - want.keys()):
            self.ipr.route("del", dst=dst, proto=RTPROT_PODNET)
            log.info("route to %s removed", dst)
        for dst, attrs in sorted(want.items()):
            now = have.get(dst)
            if now is not None and all(now.get(k) == v for k, v in attrs.items()):
                continue
            kw: dict = {"dst": dst, "gateway": attrs["gateway"], "proto": RTPROT_PODNET}
            if "oif" in attrs:
                kw["oif"] = attrs["oif"]
            if attrs.get("onlink"):
                kw["flags"] = RTNH_F_ONLINK
            self.ipr.route("replace", **kw)
            log.info("route to %s via %s", dst, attrs["gateway"])

    def _sync_vxlan(self, records: dict[str, NodeRecord], want: dict[str, dict]) -> None:
        idx = self.vxlan_index
        fdb_want: dict[str, str] = {}
        neigh_want: dict[str, str] = {}
        for name, rec in records.items():
            v4 = next((ip for ip in rec.node_ips if ipaddress.ip_address(ip).version == 4), None)
            if name == self.node or not rec.vtep_mac or v4 is None:
                continue
            fdb_want[rec.vtep_mac] = v4
            for subnet in rec.subnets:
                if subnet in want:
                    neigh_want[gateway_of(subnet)] = rec.vtep_mac
        for entry in self.ipr.fdb("dump", ifindex=idx):
            mac, dst = entry.get_attr("NDA_LLADDR"), entry.get_attr("NDA_DST")
            if entry["ifindex"] == idx and dst and fdb_want.get(mac) != dst:
                self.ipr.fdb("del", ifindex=idx, lladdr=mac, dst=dst, flags=NTF_SELF)
        for mac, dst in fdb_want.items():
            self.ipr.fdb("replace", ifindex=idx, lladdr=mac, dst=dst, state=NUD_PERMANENT, flags=NTF_SELF)
        for entry in self.ipr.get_neighbours(ifindex=idx, family=socket.AF_INET):
            ip, mac = entry.get_attr("NDA_DST"), entry.get_attr("NDA_LLADDR")
            if entry["ifindex"] == idx and neigh_want.get(ip) != mac:
                self.ipr.neigh("del", ifindex=idx, dst=ip)
        for ip, mac in neigh_want.items():
            self.ipr.neigh("replace", ifindex=idx, dst=ip, lladdr=mac, state=NUD_PERMANENT)
