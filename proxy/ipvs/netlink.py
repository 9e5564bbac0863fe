"""The IPVS generic-netlink messages that take the kernel from one desired state to the next,
built with pyroute2's IPVS message classes, and the address changes on the dummy interface.

`plan()` only builds: a list of Operations, each carrying its ipvsmsg (encodable without a
socket, which is how the tests check them on a kernel without IPVS). `send()` is the only
part that needs the kernel.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass

from pyroute2 import IPVSDest, IPVSService
from pyroute2.netlink.generic import ipvs

from proxy.ipvs.desired import FWD_MASQ, DesiredState, VirtualKey, VirtualServer

PROTOCOLS = {"TCP": socket.IPPROTO_TCP, "UDP": socket.IPPROTO_UDP, "SCTP": socket.IPPROTO_SCTP}


@dataclass(frozen=True)
class Operation:
    verb: str  # add-service / set-service / del-service / add-dest / del-dest
    key: VirtualKey
    real: tuple[str, int] | None
    msg: ipvs.ipvsmsg
    service: IPVSService | None = None  # what the message was built from
    dest: IPVSDest | None = None

    def line(self) -> str:
        """ipvsadm-like, for logs and golden tests."""
        vs = f"{self.key.protocol.lower()} {self.key.address}:{self.key.port}"
        if self.real is None:
            return f"{self.verb} {vs}"
        return f"{self.verb} {vs} -> {self.real[0]}:{self.real[1]}"


def service_nla(vs: VirtualServer | VirtualKey) -> IPVSService:
    key = vs.key if isinstance(vs, VirtualServer) else vs
    fields = {"addr": key.address, "port": key.port, "protocol": PROTOCOLS[key.protocol]}
    if isinstance(vs, VirtualServer):
        fields |= {"sched_name": vs.scheduler, "timeout": vs.persistence,
                   "flags": {"flags": vs.flags, "mask": 0xFFFF}}  # fmt: skip
    return IPVSService(**fields)


def _message(cmd: int, service: IPVSService, dest: IPVSDest | None, key_only: bool) -> ipvs.ipvsmsg:
    msg = ipvs.ipvsmsg()
    msg["cmd"] = cmd
    msg["version"] = ipvs.GENL_VERSION
    msg["attrs"] = [("IPVS_CMD_ATTR_SERVICE", service.dump_key() if key_only else service.dump_nla())]
    if dest is not None:
        msg["attrs"].append(("IPVS_CMD_ATTR_DEST", dest.dump_nla()))
    return msg


def _op(verb: str, cmd: int, key: VirtualKey, service: IPVSService, dest: IPVSDest | None = None,
        real: tuple[str, int] | None = None, key_only: bool = False) -> Operation:  # fmt: skip
    return Operation(verb, key, real, _message(cmd, service, dest, key_only), service, dest)


def plan(old: DesiredState, new: DesiredState) -> list[Operation]:
    """Virtual servers added, changed (scheduler/persistence) or removed; real servers added or
    removed. Order: new services first, then their destinations, removals last."""
    ops: list[Operation] = []
    removals: list[Operation] = []
    for key in sorted(new.servers.keys() | old.servers.keys()):
        before, after = old.servers.get(key), new.servers.get(key)
        if after is None:
            removals.append(_op("del-service", ipvs.IPVS_CMD_DEL_SERVICE, key, service_nla(key), key_only=True))
            continue
        if before is None:
            ops.append(_op("add-service", ipvs.IPVS_CMD_NEW_SERVICE, key, service_nla(after)))
        elif (before.scheduler, before.persistence) != (after.scheduler, after.persistence):
            ops.append(_op("set-service", ipvs.IPVS_CMD_SET_SERVICE, key, service_nla(after)))
        had = set(before.reals) if before else set()
        for real in sorted(set(after.reals) - had):
            dest = IPVSDest(addr=real[0], port=real[1], fwd_method=FWD_MASQ, weight=1)
            ops.append(_op("add-dest", ipvs.IPVS_CMD_NEW_DEST, key, service_nla(key), dest, real, True))
        for real in sorted(had - set(after.reals)):
            dest = IPVSDest(addr=real[0], port=real[1])
            ops.append(_op("del-dest", ipvs.IPVS_CMD_DEL_DEST, key, service_nla(key), dest, real, True))
    return ops + removals


def send(ops: list[Operation]) -> None:
    """Apply the operations over generic netlink (needs a kernel with IPVS). pyroute2's socket
    builds the same messages `plan` built, from the same service and destination fields."""
    from pyroute2 import IPVS

    with IPVS() as sock:
        for op in ops:
            verb = op.verb.split("-")[0]
            if op.verb.endswith("service"):
                sock.service(verb, service=op.service)
            else:
                sock.dest(verb, service=service_nla(op.key), dest=op.dest)
