"""The iptables and ipset rules that go with IPVS (kube-proxy's IPVS mode keeps them few and
constant: Service addresses live in ipsets, so the rules never grow with the cluster).

IPVS does the DNAT; iptables only marks what must be masqueraded (off-cluster sources to a
cluster IP, external traffic with policy Cluster, the node's own traffic to a policy-Local
external destination, hairpin), masquerades it, and drops what loadBalancerSourceRanges do not
allow. Chains are PODNET-IPVS-*; sets PODNET-* (PODNET-6-* for IPv6, through ip6tables).
"""

from __future__ import annotations

from dataclasses import dataclass

from proxy.ipvs.desired import IPSETS, DesiredState, set_kind, set_name
from proxy.model import NodeContext

MASQ_MARK = "0x4000"
NAT_CHAINS = ("PODNET-IPVS-SERVICES", "PODNET-IPVS-NODE-PORT", "PODNET-IPVS-LOAD-BALANCER",
              "PODNET-IPVS-MARK-MASQ", "PODNET-IPVS-POSTROUTING")  # fmt: skip
FILTER_CHAINS = ("PODNET-IPVS-FIREWALL",)


@dataclass(frozen=True)
class Hook:
    table: str
    builtin: str
    target: str

    def spec(self) -> str:
        return f"-m comment --comment podnet-ipvs -j {self.target}"


HOOKS = (
    Hook("nat", "PREROUTING", "PODNET-IPVS-SERVICES"),
    Hook("nat", "OUTPUT", "PODNET-IPVS-SERVICES"),
    Hook("nat", "POSTROUTING", "PODNET-IPVS-POSTROUTING"),
    Hook("filter", "INPUT", "PODNET-IPVS-FIREWALL"),
)


def ipset_text(old: DesiredState | None, new: DesiredState) -> str:
    """`ipset restore` input: sets created when missing, then only the entries that changed."""
    out = []
    for base, (kind, comment) in IPSETS.items():
        before = old.ipsets.get(base, set()) if old is not None else set()
        after = new.ipsets.get(base, set())
        name = set_name(base, new.family)
        if old is None:
            out.append(f"create {name} {set_kind(kind, new.family)} comment -exist")
        out += [f"del {name} {e} -exist" for e in sorted(before - after)]
        out += [f'add {name} {e} comment "{comment}" -exist' for e in sorted(after - before)]
    return "\n".join(out) + "\n" if out else ""


def rules_text(node: NodeContext) -> str:
    """`iptables-restore --noflush` input for the companion chains (declaring a chain flushes
    it, so this is the whole of them, every time)."""
    cidr = node.cluster_cidrs[0] if node.cluster_cidrs else None

    def ipset(base: str) -> str:
        return set_name(base, node.family)

    masq = "-j PODNET-IPVS-MARK-MASQ"
    svc = "-A PODNET-IPVS-SERVICES"
    # the node's own connections to a policy-Local external destination are masqueraded (the
    # plan's short-circuit: their source may be the very address they connect to)
    from_node = "-m addrtype --src-type LOCAL"
    nat = [f":{c} - [0:0]" for c in NAT_CHAINS]
    if node.masquerade_all:
        nat.append(f"{svc} -m set --match-set {ipset('PODNET-CLUSTER-IP')} dst,dst {masq}")
    elif cidr:
        nat.append(f"{svc} -m set --match-set {ipset('PODNET-CLUSTER-IP')} dst,dst ! -s {cidr} {masq}")
    nat += [
        f"{svc} -m set --match-set {ipset('PODNET-EXTERNAL-IP')} dst,dst "
        f"-m set ! --match-set {ipset('PODNET-EXTERNAL-LOCAL')} dst,dst {masq}",
        f"{svc} -m set --match-set {ipset('PODNET-EXTERNAL-LOCAL')} dst,dst {from_node} {masq}",
        f"{svc} -m set --match-set {ipset('PODNET-LOAD-BALANCER')} dst,dst -j PODNET-IPVS-LOAD-BALANCER",
        f"{svc} -m addrtype --dst-type LOCAL -j PODNET-IPVS-NODE-PORT",
        f"-A PODNET-IPVS-LOAD-BALANCER -m set --match-set {ipset('PODNET-EXTERNAL-LOCAL')} dst,dst -j RETURN",
        f"-A PODNET-IPVS-LOAD-BALANCER {masq}",
    ]
    for proto in ("tcp", "udp"):
        up = proto.upper()
        local = ipset(f"PODNET-NODE-PORT-LOCAL-{up}")
        nat += [
            f"-A PODNET-IPVS-NODE-PORT -p {proto} -m set --match-set {local} dst {from_node} {masq}",
            f"-A PODNET-IPVS-NODE-PORT -p {proto} -m set --match-set {local} dst -j RETURN",
            f"-A PODNET-IPVS-NODE-PORT -p {proto} -m set --match-set {ipset(f'PODNET-NODE-PORT-{up}')} dst {masq}",
        ]
    nat += [
        f"-A PODNET-IPVS-NODE-PORT -p sctp -m set --match-set {ipset('PODNET-NODE-PORT-SCTP')} dst,dst {masq}",
        f"-A PODNET-IPVS-MARK-MASQ -j MARK --or-mark {MASQ_MARK}",
        f"-A PODNET-IPVS-POSTROUTING -m set --match-set {ipset('PODNET-LOOP-BACK')} dst,dst,src -j MASQUERADE",
        f"-A PODNET-IPVS-POSTROUTING -m mark ! --mark {MASQ_MARK}/{MASQ_MARK} -j RETURN",
        f"-A PODNET-IPVS-POSTROUTING -j MARK --xor-mark {MASQ_MARK}",
        "-A PODNET-IPVS-POSTROUTING -j MASQUERADE --random-fully",
    ]
    filt = [f":{c} - [0:0]" for c in FILTER_CHAINS]
    filt.append(
        f"-A PODNET-IPVS-FIREWALL -m set --match-set {ipset('PODNET-LOAD-BALANCER-FW')} dst,dst "
        f"-m set ! --match-set {ipset('PODNET-LB-SOURCE-CIDR')} dst,dst,src -j DROP"
    )
    return "\n".join(["*nat", *nat, "COMMIT", "*filter", *filt, "COMMIT"]) + "\n"
