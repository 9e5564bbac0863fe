"""podnet-cni: the routed, no-NAT pod network plugin. Each verb reads as its steps."""

from __future__ import annotations

import contextlib
import ipaddress
import os
import sys
from _socket import AF_INET, AF_INET6  # not socket.py: see cni/netlink.py

import netns
from cni import ipam_plugin, routing, version, veth
from cni.config import NetConf, parse_netconf, valid_attachments
from cni.errors import CNIError, InvalidConfig, InvalidEnvironment, IOFailure, StateDiffers, UnknownContainer
from cni.netlink import Netlink
from cni.skel import Call, Handler, run
from ipam.config import parse_routes

IN_PROCESS_IPAM = "podnet-ipam"
# Fault injection for the crash tests: the plugin stops itself (SIGSTOP) at the named step of
# ADD, so a test can SIGKILL it exactly there. Unset in production; costs one dict lookup.
STOP_AT = "PODNET_CNI_STOP_AT"


def checkpoint(call: Call, step: str) -> None:
    if call.environ.get(STOP_AT) == step:
        import signal  # here: signal's enum conversions would cost every plugin start

        os.kill(os.getpid(), signal.SIGSTOP)


# -- IPAM: in-process for podnet-ipam, executed for any other plugin ------------------
IN_PROCESS = {
    "ADD": ipam_plugin.add,
    "DEL": ipam_plugin.delete,
    "CHECK": ipam_plugin.check,
    "GC": ipam_plugin.gc,
    "STATUS": lambda conf, _inv: ipam_plugin.status(conf),
}


def ipam(verb: str, conf: NetConf, call: Call):
    if conf.ipam["type"] == IN_PROCESS_IPAM:
        return IN_PROCESS[verb](conf.raw, call.inv)
    from cni import delegate  # here, as masq below: a module less at every start that needs none

    return delegate.execute(conf.ipam["type"], verb, conf.raw, call.environ, call.inv.path)


def _same_file(fd: int, path: str) -> bool:
    try:
        a, b = os.fstat(fd), os.stat(path)
    except OSError:
        return False
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


def _quietly(what: str, fn, *args) -> None:
    """An undo step: log its own failure, never hide the error that made us undo."""
    try:
        fn(*args)
    except Exception as e:
        print(f"podnet-cni: undo {what} failed: {e}", file=sys.stderr)


def open_pod_netns(netns_path: str) -> int:
    """The pod's namespace, or the spec's "unknown container" (code 3): a CNI code is chosen
    here, at the plugin's boundary, not by the namespace primitive."""
    try:
        fd = netns.open(netns_path)
    except netns.NamespaceError as e:
        raise UnknownContainer(f"CNI_NETNS: {e}") from None
    # A namespace is one inode of nsfs: the node's own (ours, or pid 1's when we run inside a
    # helper) would be configured as if it were a pod, default route included
    for own in ("/proc/self/ns/net", "/proc/1/ns/net"):
        if _same_file(fd, own):
            os.close(fd)
            raise InvalidEnvironment(
                f"CNI_NETNS: {netns_path!r} is the node's own network namespace ({own}), not a pod's"
            )
    return fd


@contextlib.contextmanager
def namespaces(netns_path: str):
    """Netlink sockets for the node (where we run) and for the pod, and the pod's ns fd.

    One socket per namespace: the pod's is opened inside and stays bound to it, so every step
    uses it from this thread without entering again."""
    fd = open_pod_netns(netns_path)
    try:
        with Netlink() as host:
            try:
                with netns.entered(fd):
                    pod = Netlink()
            except netns.NamespaceError as e:
                raise UnknownContainer(f"CNI_NETNS: {netns_path}: {e.reason}") from None
            with pod:
                yield host, pod, fd
    finally:
        os.close(fd)


def pod_ips(ipam_result: dict) -> list:
    ips = ipam_result.get("ips") or []
    if not ips:
        raise InvalidConfig(f"ipam.type: {ipam_result!r} returned no IP addresses")
    return [ipaddress.ip_interface(ip["address"]).ip for ip in ips]


# -- verbs ------------------------------------------------------------------------------
def cmd_add(call: Call) -> dict:
    conf = parse_netconf(call.conf)
    inv = call.inv
    check_alias(conf, inv)
    with namespaces(inv.netns) as (host, pod, pod_fd), contextlib.ExitStack() as undo:
        refuse_repeated_add(host, inv)
        ipam_result = ipam("ADD", conf, call) or {}
        undo.callback(_quietly, "IPAM allocation", ipam, "DEL", conf, call)
        checkpoint(call, "ipam")
        ips = pod_ips(ipam_result)
        mtu = conf.mtu or routing.uplink_mtu(host)
        pair = make_veth(undo, host, pod, pod_fd, conf, inv, mtu)
        checkpoint(call, "veth")
        routes = ipam_routes(ipam_result)
        routing.setup_pod(pod, pair, ips, routes)
        checkpoint(call, "pod")
        routing.setup_host(host, pair, ips)
        checkpoint(call, "host")
        if conf.ip_masq:
            from cni import masq

            undo.callback(_quietly, "ipMasq rules", masq.remove, conf.name, inv.container_id, inv.ifname)
            masq.add(ips, conf.cluster_cidrs, conf.name, inv.container_id, inv.ifname)
        result = build_result(conf, inv, pair, ips, routes, mtu)
        undo.pop_all()
    return version.convert_result(result, conf.cni_version)


def check_alias(conf: NetConf, inv) -> None:
    """The host veth's alias must fit the kernel's 255 bytes, or the link would be made and
    then fail to be labelled: refused before the kernel is touched."""
    tag = veth.alias(conf.name, inv.container_id, inv.ifname)
    if len(tag.encode()) > veth.MAX_ALIAS:
        raise InvalidEnvironment(
            f"CNI_CONTAINERID: too long for the host link's alias ({len(tag.encode())} > {veth.MAX_ALIAS} bytes)"
        )


def refuse_repeated_add(host: Netlink, inv) -> None:
    """A second ADD of one container and ifname is refused before IPAM is asked: IPAM would
    answer with the first attachment's address, and undoing would release it."""
    name = veth.host_name(inv.container_id, inv.ifname)
    if host.get_link(name) is not None:
        raise InvalidConfig(
            f"CNI_IFNAME: {inv.ifname!r} of container {inv.container_id} is already attached (host link {name})",
            "DEL the attachment first",
        )


def make_veth(undo: contextlib.ExitStack, host: Netlink, pod: Netlink, pod_fd: int, conf: NetConf, inv, mtu: int):
    """The veth pair, with its undo registered even when the call fails after the kernel made
    the link; a link that was there before (a concurrent ADD's) is never removed."""
    host_ifname = veth.host_name(inv.container_id, inv.ifname)
    tag = veth.alias(conf.name, inv.container_id, inv.ifname)
    try:
        pair = veth.create(host, pod, pod_fd, host_ifname, inv.ifname, mtu, tag)
    except FileExistsError:
        if host.get_link(host_ifname) is not None:
            undo.pop_all()  # a concurrent ADD of this attachment made it: its address is not ours
        raise InvalidConfig(
            f"CNI_IFNAME: {inv.ifname!r} or host link {host_ifname} already exists for this container"
        ) from None
    except BaseException:
        _quietly(f"veth {host_ifname}", host.del_link, host_ifname)  # made, then failed: still ours
        raise
    undo.callback(_quietly, f"veth {host_ifname}", host.del_link, host_ifname)
    return pair


def ipam_routes(ipam_result: dict):
    with ipam_plugin.cni_errors():
        return parse_routes(ipam_result.get("routes") or [])


def build_result(conf: NetConf, inv, pair: veth.VethPair, ips, routes, mtu: int) -> dict:
    host_if: dict[str, str | int] = {"name": pair.host.name, "mac": pair.host.mac}
    pod_if: dict[str, str | int] = {"name": pair.pod.name, "mac": pair.pod.mac, "sandbox": inv.netns}
    if version.at_least(conf.cni_version, "1.1.0"):
        host_if["mtu"] = pod_if["mtu"] = mtu
    result: dict[str, object] = {
        "cniVersion": conf.cni_version,
        "interfaces": [host_if, pod_if],
        "ips": [
            {
                "address": str(routing.host_route(ip)),
                "gateway": str(routing.gateway_for(ip.version, pair)),
                "interface": 1,
            }
            for ip in ips
        ],
        "routes": [
            {"dst": str(routing.DEFAULT[v]), "gw": str(routing.gateway_for(v, pair))}
            for v in sorted({ip.version for ip in ips})
        ]
        + [
            {"dst": str(r.dst), "gw": str(r.gw or routing.gateway_for(r.dst.version, pair))}
            for r in routes
            if r.dst.prefixlen
        ],
    }
    dns = conf.dns.to_json()
    if dns:
        result["dns"] = dns
    return result


def cmd_del(call: Call) -> None:
    """Release first, then remove; anything already gone is success; report failures together."""
    conf = parse_netconf(call.conf)
    inv = call.inv
    failures = []
    try:
        ipam("DEL", conf, call)
    except CNIError as e:
        failures.append(e.msg)
    try:
        with Netlink() as host:
            host.del_link(veth.host_name(inv.container_id, inv.ifname))
    except OSError as e:
        failures.append(f"removing veth: {e}")
    if conf.ip_masq:
        from cni import masq

        try:
            masq.remove(conf.name, inv.container_id, inv.ifname)
        except CNIError as e:
            failures.append(e.msg)
    if failures:
        raise IOFailure("DEL incomplete: " + "; ".join(failures))


def cmd_check(call: Call) -> None:
    conf = parse_netconf(call.conf)
    if not version.at_least(conf.cni_version, "0.4.0"):
        raise version.IncompatibleVersion(f"cniVersion: CHECK needs 0.4.0 or later, not {conf.cni_version}")
    if conf.prev_result is None:
        raise InvalidConfig("prevResult: CHECK needs the result of ADD")
    inv = call.inv
    ipam("CHECK", conf, call)
    with namespaces(inv.netns) as (host, pod, _fd):
        problems = differences(conf.prev_result, inv, host, pod)
    if problems:
        raise StateDiffers("CHECK found differences: " + "; ".join(problems))


def differences(prev: dict, inv, host: Netlink, pod: Netlink) -> list[str]:
    """What the kernel holds that prevResult says it should not, or lacks that it should."""
    problems = []
    interfaces = prev.get("interfaces") or []
    mine = [i for i, itf in enumerate(interfaces) if itf.get("name") == inv.ifname and itf.get("sandbox")]
    if not mine:
        return [f"prevResult.interfaces: no interface {inv.ifname!r} with a sandbox"]
    pod_index = mine[0]
    link = pod.get_link(inv.ifname)
    if link is None:
        return [f"interface {inv.ifname} is missing from {inv.netns}"]
    want_mac = interfaces[pod_index].get("mac")
    if want_mac and want_mac.lower() != link.mac:
        problems.append(f"interface {inv.ifname}: MAC is {link.mac}, prevResult says {want_mac}")
    if not link.up:
        problems.append(f"interface {inv.ifname} is down")
    have = {str(a) for a in pod.addresses(link.index)}
    ips = []
    for ip in prev.get("ips") or []:
        if ip.get("interface", pod_index) != pod_index:
            continue
        ips.append(ipaddress.ip_interface(ip["address"]).ip)
        if ip["address"] not in have:
            problems.append(f"interface {inv.ifname}: address {ip['address']} is missing")
    pod_routes = {(str(r.dst), r.gateway) for fam in (AF_INET, AF_INET6) for r in pod.routes(fam)}
    for route in prev.get("routes") or []:
        dst = str(ipaddress.ip_network(route["dst"], strict=False))
        if not any(d == dst and (route.get("gw") is None or g == route["gw"]) for d, g in pod_routes):
            problems.append(f"pod route {route['dst']} via {route.get('gw', 'link')} is missing")
    host_name = veth.host_name(inv.container_id, inv.ifname)
    host_link = host.get_link(host_name)
    if host_link is None:
        problems.append(f"host side {host_name} is missing")
    else:
        host_routes = {str(r.dst) for fam in (AF_INET, AF_INET6) for r in host.routes(fam) if r.oif == host_link.index}
        for ip in ips:
            if str(routing.host_route(ip).network) not in host_routes:
                problems.append(f"host route to {ip} via {host_name} is missing")
    return problems


def cmd_gc(call: Call) -> None:
    """Release allocations and remove host veths of attachments the runtime no longer has."""
    conf = parse_netconf(call.conf)
    valid = valid_attachments(call.conf)
    ipam("GC", conf, call)
    with Netlink() as host:
        for link in host.links():
            owner = veth.parse_alias(link.alias)
            if owner and owner[0] == conf.name and (owner[1], owner[2]) not in valid:
                host.del_link(link.name)
    if conf.ip_masq:
        from cni import masq

        masq.remove_matching(lambda net, cid, ifname: net == conf.name and (cid, ifname) not in valid)


def cmd_status(call: Call) -> None:
    ipam("STATUS", parse_netconf(call.conf), call)


HANDLERS: dict[str, Handler] = {"ADD": cmd_add, "DEL": cmd_del, "CHECK": cmd_check, "GC": cmd_gc, "STATUS": cmd_status}


def main() -> None:
    sys.exit(run(HANDLERS))
