"""The iptables and ipset rules that go with IPVS (kube-proxy's IPVS mode keeps them few and
constant: Service addresses live in ipsets, so the rules never grow with the cluster).

IPVS does the DNAT; iptables only marks what must be masqueraded (off-cluster sources to a
cluster IP, external traffic with policy Cluster, hairpin), masquerades it, and drops what
loadBalancerSourceRanges do not allow. Chains are PODNET-IPVS-*; sets PODNET-*.
"""

from __future__ import annotations

from dataclasses import dataclass

from proxy.ipvs.desired import IPSETS, DesiredState
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
    for name, (kind, comment) in IPSETS.items():
        before = old.ipsets.get(name, set()) if old is not None else set()
        after = new.ipsets.get(name, set())
        if old is None:
            out.append(f"create {name} {kind} comment -exist")
        out += [f"del {name} {e} -exist" for e in sorted(before - after)]
        out += [f'add {name} {e} comment "{comment}" -exist' for e in sorted(after - before)]
    return "\n".join(out) + "\n" if out else ""


def rules_text(node: NodeContext) -> str:
    """`iptables-restore --noflush` input for the companion chains (declaring a chain flushes
    it, so this is the whole of them, every time)."""
    cidr = node.cluster_cidrs[0] if node.cluster_cidrs else None
    masq = "-j PODNET-IPVS-MARK-MASQ"
    svc = "-A PODNET-IPVS-SERVICES"
    nat = [f":{c} - [0:0]" for c in NAT_CHAINS]
    if node.masquerade_all:
        nat.append(f"{svc} -m set --match-set PODNET-CLUSTER-IP dst,dst {masq}")
    elif cidr:
        nat.append(f"{svc} -m set --match-set PODNET-CLUSTER-IP dst,dst ! -s {cidr} {masq}")
    nat += [
        f"{svc} -m set --match-set PODNET-EXTERNAL-IP dst,dst -m set ! --match-set PODNET-EXTERNAL-LOCAL dst,dst "
        f"{masq}",
        f"{svc} -m set --match-set PODNET-LOAD-BALANCER dst,dst -j PODNET-IPVS-LOAD-BALANCER",
        f"{svc} -m addrtype --dst-type LOCAL -j PODNET-IPVS-NODE-PORT",
        "-A PODNET-IPVS-LOAD-BALANCER -m set --match-set PODNET-EXTERNAL-LOCAL dst,dst -j RETURN",
        f"-A PODNET-IPVS-LOAD-BALANCER {masq}",
    ]
    for proto in ("tcp", "udp"):
        up = proto.upper()
        nat += [
            f"-A PODNET-IPVS-NODE-PORT -p {proto} -m set --match-set PODNET-NODE-PORT-LOCAL-{up} dst -j RETURN",
            f"-A PODNET-IPVS-NODE-PORT -p {proto} -m set --match-set PODNET-NODE-PORT-{up} dst {masq}",
        ]
    nat += [
        f"-A PODNET-IPVS-NODE-PORT -p sctp -m set --match-set PODNET-NODE-PORT-SCTP dst,dst {masq}",
        f"-A PODNET-IPVS-MARK-MASQ -j MARK --or-mark {MASQ_MARK}",
        "-A PODNET-IPVS-POSTROUTING -m set --match-set PODNET-LOOP-BACK dst,dst,src -j MASQUERADE",
        f"-A PODNET-IPVS-POSTROUTING -m mark ! --mark {MASQ_MARK}/{MASQ_MARK} -j RETURN",
        f"-A PODNET-IPVS-POSTROUTING -j MARK --xor-mark {MASQ_MARK}",
        "-A PODNET-IPVS-POSTROUTING -j MASQUERADE --random-fully",
    ]
    filt = [f":{c} - [0:0]" for c in FILTER_CHAINS]
    filt.append(
        "-A PODNET-IPVS-FIREWALL -m set --match-set PODNET-LOAD-BALANCER-FW dst,dst "
        "-m set ! --match-set PODNET-LB-SOURCE-CIDR dst,dst,src -j DROP"
    )
    return "\n".join(["*nat", *nat, "COMMIT", "*filter", *filt, "COMMIT"]) + "\n"
