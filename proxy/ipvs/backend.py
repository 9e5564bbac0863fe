"""The IPVS mode behind the Backend interface: render the desired state, diff it against what
was applied (virtual/real servers over generic netlink, dummy-interface addresses, ipset
entries), apply, and clean up.

It needs the kernel's IPVS (ip_vs) and dummy links; `kernel_support()` says what is missing,
and `apply` refuses with that reason rather than half-programming a node.
"""

from __future__ import annotations

import logging
import subprocess
from dataclasses import dataclass, field

from proxy.backend import ApplyError
from proxy.ipvs import companion, netlink
from proxy.ipvs.desired import DUMMY, DesiredState, check_scheduler, host_prefix, render
from proxy.model import NodeContext, ProxyModel, ServicePortName

log = logging.getLogger("podnet.proxy")


@dataclass
class IpvsTransaction:
    full: bool
    desired: DesiredState
    ops: list[netlink.Operation]
    addresses_add: list[str] = field(default_factory=list)
    addresses_del: list[str] = field(default_factory=list)
    ipsets: str = ""
    rules: str = ""  # companion iptables rules (full syncs)

    def text(self) -> str:
        out = [f"ip addr add {host_prefix(a)} dev {DUMMY}" for a in self.addresses_add]
        out += [op.line() for op in self.ops]
        out += [f"ip addr del {host_prefix(a)} dev {DUMMY}" for a in self.addresses_del]
        return "\n".join(out) + ("\n" if out else "") + self.ipsets + self.rules

    def rule_counts(self) -> dict[str, int]:
        return {"ipvs": sum(1 + len(vs.reals) for vs in self.desired.servers.values())}


def kernel_support() -> str | None:
    """None when this network namespace can run the IPVS mode, else why not."""
    from pyroute2 import IPVS
    from pyroute2.netlink.exceptions import NetlinkError

    try:
        IPVS().close()
    except (NetlinkError, OSError) as e:
        return f"this kernel has no IPVS (generic netlink family IPVS: {e})"
    probe = subprocess.run(["ip", "link", "add", "podnet-ipvsprobe", "type", "dummy"], capture_output=True, text=True)
    if probe.returncode != 0:
        return f"this kernel has no dummy links ({probe.stderr.strip()})"
    subprocess.run(["ip", "link", "del", "podnet-ipvsprobe"], capture_output=True)
    return None


class IpvsBackend:
    mode = "ipvs"

    def __init__(self, node: NodeContext, scheduler: str = "rr"):
        self.node = node
        self.scheduler = check_scheduler(scheduler)
        self.applied: DesiredState | None = None  # None: unknown (start from nothing)

    def render(self, model: ProxyModel, changed: set[ServicePortName], full: bool) -> IpvsTransaction:
        # The whole desired state is rendered each time (no per-Service cache, unlike the other
        # modes): only the differences are sent, but the planning is linear in the cluster.
        desired = render(model, self.scheduler)
        old = self.applied or DesiredState()
        tx = IpvsTransaction(full or self.applied is None, desired, netlink.plan(old, desired))
        tx.addresses_add = sorted(desired.addresses - old.addresses)
        tx.addresses_del = sorted(old.addresses - desired.addresses)
        tx.ipsets = companion.ipset_text(self.applied, desired)
        if tx.full:
            tx.rules = companion.rules_text(model.node)
        return tx

    def apply(self, tx: IpvsTransaction) -> None:
        reason = kernel_support()
        if reason is not None:
            raise ApplyError(f"--proxy-mode=ipvs cannot run here: {reason}")
        try:
            _ensure_dummy()
            for a in tx.addresses_add:
                _run("ip", "addr", "replace", host_prefix(a), "dev", DUMMY)
            _run("ipset", "restore", input=tx.ipsets)
            if tx.rules:
                _run(f"{_iptables(self.node.family)}-restore", "--noflush", input=tx.rules)
                _hook(self.node.family)
            netlink.send(tx.ops)
            for a in tx.addresses_del:
                _run("ip", "addr", "del", host_prefix(a), "dev", DUMMY)
        except (subprocess.CalledProcessError, OSError) as e:
            self.applied = None
            raise ApplyError(f"ipvs: {e}") from e
        self.applied = tx.desired

    def cleanup(self) -> list[str]:
        """The dummy link (and with it every Service address), podnet's virtual servers (those
        on the dummy's addresses and node ports podnet applied), PODNET-IPVS- chains and their
        hooks and PODNET- ipsets of both families (a dual-stack node's IPv6 proxier has
        ip6tables chains and PODNET-6- sets)."""
        removed: list[str] = []
        if self.applied is not None and kernel_support() is None:
            ops = netlink.plan(self.applied, DesiredState())
            netlink.send(ops)
            removed += [op.line() for op in ops]
        if subprocess.run(["ip", "link", "show", DUMMY], capture_output=True).returncode == 0:
            _run("ip", "link", "del", DUMMY)
            removed.append(f"ip link del {DUMMY}")
        for family in (4, 6):
            removed += _unhook_and_delete_chains(family)
            removed += _delete_ipsets(family)
        self.applied = None
        return removed

    def show(self) -> str:
        """The companion chains (the virtual servers need IPVS, which `ipvsadm -Ln` shows)."""
        out = []
        for table in ("nat", "filter"):
            r = subprocess.run([f"{_iptables(self.node.family)}-save", "-t", table], capture_output=True, text=True)
            lines = [line for line in r.stdout.splitlines() if "PODNET-IPVS-" in line]
            if lines:
                out += [f"*{table}", *lines]
        return "\n".join(out) + "\n" if out else ""


def _run(*args: str, input: str | None = None) -> None:
    subprocess.run(args, input=input, check=True, capture_output=True, text=True)


def _ensure_dummy() -> None:
    if subprocess.run(["ip", "link", "show", DUMMY], capture_output=True).returncode != 0:
        _run("ip", "link", "add", DUMMY, "type", "dummy")
    _run("ip", "link", "set", DUMMY, "up")


def _iptables(family: int) -> str:
    return "iptables" if family == 4 else "ip6tables"


def _hook(family: int) -> None:
    ipt = _iptables(family)
    for h in companion.HOOKS:
        spec = h.spec().split()
        if subprocess.run([ipt, "-t", h.table, "-C", h.builtin, *spec], capture_output=True).returncode != 0:
            _run(ipt, "-t", h.table, "-I", h.builtin, "1", *spec)


def _unhook_and_delete_chains(family: int) -> list[str]:
    ipt = _iptables(family)
    removed = []
    for h in companion.HOOKS:
        spec = h.spec().split()
        while subprocess.run([ipt, "-t", h.table, "-D", h.builtin, *spec], capture_output=True).returncode == 0:
            removed.append(f"{ipt} -t {h.table} -D {h.builtin} -j {h.target}")
    for table, chains in (("nat", companion.NAT_CHAINS), ("filter", companion.FILTER_CHAINS)):
        for c in chains:
            if subprocess.run([ipt, "-t", table, "-F", c], capture_output=True).returncode == 0:
                _run(ipt, "-t", table, "-X", c)
                removed.append(f"{ipt} -t {table} -X {c}")
    return removed


def _delete_ipsets(family: int) -> list[str]:
    from proxy.ipvs.desired import IPSETS, set_name

    r = subprocess.run(["ipset", "list", "-n"], capture_output=True, text=True)
    present = set(r.stdout.split()) if r.returncode == 0 else set()
    removed = []
    for name in (set_name(base, family) for base in IPSETS):
        if name in present:
            _run("ipset", "destroy", name)
            removed.append(f"ipset destroy {name}")
    return removed
