"""The node's masquerade: pod traffic that leaves the cluster CIDR goes out with the node's
address, by one rule per family for the node's whole pod subnet (flannel's --ip-masq).

Why not the plugin's ipMasq (cni/masq.py, a chain per attachment): that costs an
`iptables-restore` on every ADD and an `iptables-save` of the whole nat table on every DEL,
each taking the xtables lock the service proxy syncs under, and it says nothing a rule for
the node's subnet does not. The agent owns the subnet, so the agent writes the rule, once,
before the conflist that lets pods attach.

    nat POSTROUTING:   -s <node subnet> -m comment "podnet-node-masq" -j PODNET-NODE-MASQ
    PODNET-NODE-MASQ:  -d <cluster CIDR> -j RETURN        (pod to pod: no NAT)
                       ! -d <multicast> -j MASQUERADE

Declaring the chain in `iptables-restore --noflush` flushes it, so a restarted agent rewrites
it whole; jumps for a subnet the node no longer holds are removed. Only the chain and the
jumps with podnet's comment are ever touched; stopping the agent leaves them (pods keep
their egress while it restarts, as they keep their routes).
"""

from __future__ import annotations

import ipaddress
import shutil
import subprocess

CHAIN = "PODNET-NODE-MASQ"
COMMENT = "podnet-node-masq"
MULTICAST = {4: "224.0.0.0/4", 6: "ff00::/8"}
TOOLS = {4: ("iptables-save", "iptables-restore"), 6: ("ip6tables-save", "ip6tables-restore")}


class MasqueradeError(RuntimeError):
    pass


def rules(version: int, subnets: list[str], cluster_cidrs: list[str], current_nat: list[str]) -> str:
    """The restore text that makes the node's masquerade for one family what it should be,
    given the nat table as iptables-save prints it now."""
    mine = [s for s in subnets if ipaddress.ip_network(s).version == version]
    jumps = {f"-A POSTROUTING -s {s} -m comment --comment {COMMENT} -j {CHAIN}" for s in mine}
    present = set()
    lines = ["*nat", f":{CHAIN} - [0:0]"]
    for line in current_nat:
        if line.startswith("-A POSTROUTING ") and f"-j {CHAIN}" in line:
            # iptables-save prints the comment quoted only when it has spaces; ours has none
            if line in jumps:
                present.add(line)
            else:
                lines.append("-D" + line[2:])
    for cidr in cluster_cidrs:
        if ipaddress.ip_network(cidr).version == version:
            lines.append(f"-A {CHAIN} -d {cidr} -j RETURN")
    lines.append(f"-A {CHAIN} ! -d {MULTICAST[version]} -j MASQUERADE")
    lines += sorted(jumps - present)
    return "\n".join([*lines, "COMMIT"]) + "\n"


def _run(args: list[str], text: str | None = None) -> str:
    tool = shutil.which(args[0])
    if tool is None:
        raise MasqueradeError(f"node masquerade: {args[0]} not found (install iptables)")
    proc = subprocess.run([tool, *args[1:]], input=text, capture_output=True, text=True)
    if proc.returncode != 0:
        raise MasqueradeError(f"node masquerade: {args[0]} failed: {proc.stderr.strip()}")
    return proc.stdout


def ensure(subnets: list[str], cluster_cidrs: list[str]) -> None:
    """Masquerade what the node's pods send outside the cluster CIDRs, for each family the
    node has a subnet of."""
    for version in sorted({ipaddress.ip_network(s).version for s in subnets}):
        save, restore = TOOLS[version]
        current = _run([save, "-t", "nat"]).splitlines()
        _run([restore, "--noflush", "-w"], rules(version, subnets, cluster_cidrs, current))
