"""ipMasq: pod traffic that leaves the cluster CIDR is masqueraded to the node's address.

As the reference bridge plugin does it, one chain per attachment in the nat table, jumped
to from POSTROUTING for the pod's source address: the chain returns for destinations in
the cluster CIDR (pods keep their own addresses between themselves: no NAT) and
masquerades the rest. Everything goes in with one `iptables-restore --noflush` per
family, so the kernel never holds half of it. The chain name and the jump's comment carry
podnet's prefix and the attachment, so DEL and GC remove exactly what ADD made.
"""

from __future__ import annotations

import ipaddress
import os

from cni.errors import IOFailure
from cni.veth import short_digest

CHAIN_PREFIX = "PODNET-MASQ-"
COMMENT_PREFIX = "podnet-masq"
# A runtime may run plugins without PATH.
_SEARCH_PATH = os.pathsep.join(["/usr/sbin", "/sbin", "/usr/bin", "/bin"])
_TOOLS = {4: ("iptables-save", "iptables-restore"), 6: ("ip6tables-save", "ip6tables-restore")}
MULTICAST = {4: "224.0.0.0/4", 6: "ff00::/8"}


def chain_name(network: str, container_id: str, ifname: str) -> str:
    return CHAIN_PREFIX + short_digest(f"{network}/{container_id}/{ifname}").upper()


def comment(network: str, container_id: str, ifname: str) -> str:
    return f"{COMMENT_PREFIX} {network} {container_id} {ifname}"


def _run(*args: str, input: str | None = None):
    # Imported on use: subprocess and shutil add a good part of a standalone plugin's start,
    # and most pods have no ipMasq.
    import subprocess

    return subprocess.run(args, input=input, capture_output=True, text=True)


def _tool(name: str) -> str:
    import shutil

    path = shutil.which(name, path=os.environ.get("PATH", "") + os.pathsep + _SEARCH_PATH)
    if path is None:
        raise IOFailure(f"ipMasq: {name} not found (install iptables)")
    return path


def _restore(version: int, text: str) -> None:
    proc = _run(_tool(_TOOLS[version][1]), "--noflush", "-w", input=text)
    if proc.returncode != 0:
        raise IOFailure(f"ipMasq: {_TOOLS[version][1]} failed: {proc.stderr.strip()}")


def _nat_rules(version: int) -> list[str]:
    proc = _run(_tool(_TOOLS[version][0]), "-t", "nat")
    if proc.returncode != 0:
        raise IOFailure(f"ipMasq: {_TOOLS[version][0]} failed: {proc.stderr.strip()}")
    return proc.stdout.splitlines()


def add(ips, cluster_cidrs, network: str, container_id: str, ifname: str) -> None:
    chain = chain_name(network, container_id, ifname)
    note = comment(network, container_id, ifname)
    for version in sorted({ip.version for ip in ips}):
        lines = ["*nat", f":{chain} - [0:0]"]
        for cidr in cluster_cidrs:
            if cidr.version == version:
                lines.append(f'-A {chain} -d {cidr} -m comment --comment "{note}" -j RETURN')
        lines.append(f'-A {chain} ! -d {MULTICAST[version]} -m comment --comment "{note}" -j MASQUERADE')
        for ip in ips:
            if ip.version == version:
                host = ipaddress.ip_interface((ip, ip.max_prefixlen))
                lines.append(f'-A POSTROUTING -s {host} -m comment --comment "{note}" -j {chain}')
        lines.append("COMMIT")
        _restore(version, "\n".join(lines) + "\n")


def remove(network: str, container_id: str, ifname: str, versions=(4, 6)) -> None:
    """Remove the attachment's chain and jumps; nothing there is success."""
    remove_matching(lambda net, cid, ifn: (net, cid, ifn) == (network, container_id, ifname), versions)


def remove_matching(select, versions=(4, 6)) -> None:
    """Remove every podnet masquerade of an attachment (network, container id, ifname) selected."""
    for version in versions:
        try:
            rules = _nat_rules(version)
        except IOFailure:
            if version == 6:
                continue  # no IPv6 tables on this node: nothing of ours there
            raise
        deletes, chains = [], set()
        for line in rules:
            if not line.startswith("-A POSTROUTING ") or f'--comment "{COMMENT_PREFIX} ' not in line:
                continue
            owner = line.split(f'--comment "{COMMENT_PREFIX} ', 1)[1].split('"', 1)[0].split(" ")
            if len(owner) == 3 and select(*owner):
                deletes.append("-D" + line[2:])
                chains.add(line.rsplit(" -j ", 1)[1])
        if not deletes:
            continue
        text = ["*nat", *deletes]
        text += [f"-F {c}" for c in sorted(chains)] + [f"-X {c}" for c in sorted(chains)]
        _restore(version, "\n".join([*text, "COMMIT"]) + "\n")
