"""podnet-ipam: the CNI IPAM protocol over podnet's address pools.

It serves podnet-cni (which calls it in-process, to spare a second interpreter start) and
any other plugin (the reference bridge and ptp) that executes it.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import sys

from cni import version
from cni.config import Invocation, common_fields, valid_attachments
from cni.errors import InvalidConfig, NotAvailable, RangeFull, StateDiffers, TryAgainLater
from cni.skel import Call, run
from ipam.config import IPAMConf, parse_ipam
from ipam.disk import DiskStore
from ipam.errors import IPAMError, StoreUnavailable
from ipam.errors import RangeFull as PoolFull
from ipam.node_lock import NodeLockedStore
from ipam.pool import AddressPool, owner_key

# Without importing typing, which costs each standalone plugin run more than it is worth:
# the store interface is only needed by the type checker (which treats this name as true).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from ipam.store import Store


@contextlib.contextmanager
def cni_errors():
    """IPAM's errors as CNI codes: a full range or an unreachable store is worth a retry."""
    try:
        yield
    except PoolFull as e:
        raise RangeFull(str(e)) from None
    except StoreUnavailable as e:
        raise TryAgainLater(str(e)) from None
    except IPAMError as e:  # bad config, or a requested address already taken
        raise InvalidConfig(str(e)) from None


def load(conf: dict) -> tuple[str, IPAMConf]:
    cni_version, name = common_fields(conf)
    ipam = conf.get("ipam")
    if not isinstance(ipam, dict):
        raise InvalidConfig("ipam: missing or not a JSON object")
    with cni_errors():
        return cni_version, parse_ipam(ipam, name)


def open_pool(ipam: IPAMConf) -> AddressPool:
    with cni_errors():
        return AddressPool(pool_store(ipam), ipam.range_sets)


def pool_store(ipam: IPAMConf) -> Store:
    """The dataDir's pool directory, or the pool's place in the configured shared store."""
    if ipam.store is None:
        return DiskStore(ipam.pool_dir)
    store = ipam.store.open()
    for name in ipam.pool_path:
        store = store.child(name)
    return NodeLockedStore(store, ipam.pool_dir)


def requested_ips(conf: dict, inv: Invocation) -> tuple:
    """Addresses the runtime asks for: CNI_ARGS IP=a,b or runtimeConfig.ips (host-local's ways)."""
    raw: list[str] = []
    for key, value in inv.args:
        if key == "IP":
            raw.extend(v for v in value.split(",") if v)
    runtime = conf.get("runtimeConfig") or {}
    raw.extend(runtime.get("ips", []) if isinstance(runtime, dict) else [])
    out = []
    for item in raw:
        try:
            out.append(ipaddress.ip_interface(item).ip)
        except ValueError:
            raise InvalidConfig(f"requested IP {item!r} is not an IP address") from None
    return tuple(out)


def add(conf: dict, inv: Invocation) -> dict:
    """Allocate and return the IPAM result (in the newest result format)."""
    _, ipam = load(conf)
    pool = open_pool(ipam)
    with cni_errors():
        allocations = pool.allocate(owner_key(inv.container_id, inv.ifname), requested_ips(conf, inv))
    ips = []
    for a in allocations:
        entry = {"address": str(a.interface)}
        if a.range.gateway is not None:
            entry["gateway"] = str(a.range.gateway)
        ips.append(entry)
    result: dict[str, object] = {
        "cniVersion": version.CURRENT,
        "ips": ips,
        "routes": [r.to_json() for r in ipam.routes],
    }
    dns = conf.get("ipam", {}).get("dns")
    if isinstance(dns, dict):
        result["dns"] = dns
    return result


def delete(conf: dict, inv: Invocation) -> None:
    _, ipam = load(conf)
    with cni_errors():
        open_pool(ipam).release(owner_key(inv.container_id, inv.ifname))


def check(conf: dict, inv: Invocation) -> None:
    _, ipam = load(conf)
    with cni_errors():
        held = {str(a.ip) for a in open_pool(ipam).held_by(owner_key(inv.container_id, inv.ifname))}
    if not held:
        raise StateDiffers(f"no address is allocated to container {inv.container_id} ({inv.ifname})")
    prev = conf.get("prevResult") or {}
    for ip in prev.get("ips", []):
        address = str(ipaddress.ip_interface(ip["address"]).ip)
        if address not in held:
            raise StateDiffers(f"prevResult address {address} is not allocated to this container")


def gc(conf: dict, inv: Invocation) -> list[str]:
    _, ipam = load(conf)
    valid = {owner_key(cid, ifname) for cid, ifname in valid_attachments(conf)}
    with cni_errors():
        return open_pool(ipam).gc(valid)


def status(conf: dict) -> None:
    """Can we serve ADDs: the data directory must be writable, a shared store reachable."""
    _, ipam = load(conf)
    if ipam.store is not None:
        try:
            pool_store(ipam).keys()
        except IPAMError as e:
            raise NotAvailable(f"ipam.store: {e}") from None
        return
    try:
        DiskStore(ipam.pool_dir)
    except StoreUnavailable as e:
        raise NotAvailable(str(e)) from None
    if not os.access(ipam.pool_dir, os.W_OK):
        raise NotAvailable(f"ipam.dataDir: {ipam.pool_dir} is not writable")


def _add(call: Call) -> dict:
    cni_version, _ = common_fields(call.conf)
    return version.convert_result(add(call.conf, call.inv), cni_version)


def _check(call: Call) -> None:
    cni_version, _ = common_fields(call.conf)
    if not version.at_least(cni_version, "0.4.0"):
        raise version.IncompatibleVersion(f"cniVersion: CHECK needs 0.4.0 or later, not {cni_version}")
    check(call.conf, call.inv)


HANDLERS = {
    "ADD": _add,
    "DEL": lambda call: delete(call.conf, call.inv),
    "CHECK": _check,
    "GC": lambda call: (gc(call.conf, call.inv), None)[1],
    "STATUS": lambda call: status(call.conf),
}


def main() -> None:
    sys.exit(run(HANDLERS))
