"""The declarative layout of podnet's nftables table (`ip podnet` / `ip6 podnet`): its base
chains, fixed chains, maps and sets. Set-up renders from this table and `--cleanup` deletes the
table it names, so nothing podnet made can be missed and nothing else is touched.

Dispatch is constant-time in the number of Services, and neither the number of chains nor
any verdict depends on how many endpoints a Service has:

    nat-prerouting / nat-output -> services
        daddr . proto . dport vmap @service-ips        -> goto a picker chain
        (local daddr) proto . dport vmap @service-nodeports -> goto a picker chain
    picker chain [np-]int-PROTO / ext-PROTO / extl-PROTO / pickc-PROTO (one per kind and protocol):
        masquerade marking as the kind requires, then one rule per endpoint count N in use:
        daddr . dport @<picker>-N dnat to daddr . dport . (numgen random mod N) map @slots-PROTO

A Service with N endpoints is a member of the count set <picker>-N; the endpoint of each slot
lives in a map. Adding an endpoint to a Service is therefore only element changes in plain
sets and maps (its new slot, its membership moving from <picker>-N to <picker>-N+1): the
kernel re-validates the whole table (every jump and goto, through every verdict map) whenever
a goto element or a rule is added, so a verdict that followed the endpoint count made a
one-endpoint change grow with the cluster (1.1 ms at 1,000 Services, 3.8 ms at 10,000). A
picker's rules change only when the first Service with some N arrives or the last leaves.
kube-proxy's nftables mode keeps a chain per Service and per endpoint; with nft 1.0.x every
`nft -f` run first reads every chain of the table, so a chain per endpoint makes even a
one-line update cost ~5 us per chain (0.5 s at 100,000 endpoints, measured on this machine).
Session affinity keeps kube-proxy's
layout (a chain per Service port and per endpoint, a dynamic set with timeout per endpoint):
it is rare, and the chains are only made for Services that ask for it.
"""

from __future__ import annotations

from dataclasses import dataclass

TABLE = "podnet"
MASQ_MARK = "0x4000"


@dataclass(frozen=True)
class Family:
    """What differs between `ip podnet` and `ip6 podnet`."""

    name: str  # "ip" or "ip6"
    addr_type: str  # "ipv4_addr" / "ipv6_addr"
    loopback: str

    @property
    def table(self) -> str:
        return f"{self.name} {TABLE}"


FAMILIES = {
    4: Family("ip", "ipv4_addr", "127.0.0.0/8"),
    6: Family("ip6", "ipv6_addr", "::1"),
}


@dataclass(frozen=True)
class BaseChain:
    name: str
    kind: str  # filter / nat
    hook: str
    priority: str
    rules: tuple[str, ...]


NEW = "ct state new"

BASE_CHAINS = (
    BaseChain("filter-prerouting", "filter", "prerouting", "-110", (f"{NEW} jump firewall-check",)),
    BaseChain(
        "filter-input",
        "filter",
        "input",
        "-110",
        (f"{NEW} jump nodeport-endpoints-check", f"{NEW} jump service-endpoints-check"),
    ),
    BaseChain(
        "filter-forward",
        "filter",
        "forward",
        "-110",
        (f"{NEW} jump service-endpoints-check", f"{NEW} jump cluster-ips-check"),
    ),
    BaseChain(
        "filter-output",
        "filter",
        "output",
        "-110",
        (f"{NEW} jump service-endpoints-check", f"{NEW} jump firewall-check"),
    ),
    # after DNAT: whatever still goes to a cluster IP matched no port of it
    BaseChain("filter-output-post-dnat", "filter", "output", "-90", (f"{NEW} jump cluster-ips-check",)),
    BaseChain("nat-prerouting", "nat", "prerouting", "-100", ("jump services",)),
    BaseChain("nat-output", "nat", "output", "-100", ("jump services",)),
    BaseChain("nat-postrouting", "nat", "postrouting", "100", ("jump masquerading",)),
)


def maps(f: Family) -> dict[str, str]:
    """name -> the `add map/set` body (without the table)."""
    a = f.addr_type
    out = {
        # dispatch
        "service-ips": f"map service-ips {{ type {a} . inet_proto . inet_service : verdict ; }}",
        "service-nodeports": "map service-nodeports { type inet_proto . inet_service : verdict ; }",
        "cluster-dispatch": f"map cluster-dispatch {{ type {a} . inet_proto . inet_service : verdict ; }}",
        "np-cluster-dispatch": "map np-cluster-dispatch { type inet_proto . inet_service : verdict ; }",
    }
    # Endpoint slots, one map per protocol: a DNAT through a map whose data names the port as
    # `tcp dport` is only valid for TCP (nft adds that dependency), and `th dport` on the data
    # side cannot be read back by nft 1.0.6 ("conflicting protocols" in every later run).
    for proto in PROTOCOLS:
        target = f"{f.name} daddr . {proto} dport"
        for name in slot_maps(proto):
            key = "th dport" if name.startswith("np-") else f"{f.name} daddr . th dport"
            out[name] = f"map {name} {{ typeof {key} . numgen random mod 1 : {target} ; }}"
    return out | {
        # filtering
        "no-endpoint-services": f"map no-endpoint-services {{ type {a} . inet_proto . inet_service : verdict ; }}",
        "no-endpoint-nodeports": "map no-endpoint-nodeports { type inet_proto . inet_service : verdict ; }",
        "firewall-ips": f"set firewall-ips {{ type {a} . inet_proto . inet_service ; }}",
        "firewall-allow": f"set firewall-allow {{ type {a} . inet_proto . inet_service . {a} ; flags interval ; }}",
        "cluster-ips": f"set cluster-ips {{ type {a} ; }}",
        "service-cidrs": f"set service-cidrs {{ type {a} ; flags interval ; }}",
        "nodeport-ips": f"set nodeport-ips {{ type {a} ; }}",
        # endpoint pairs (ip . ip): a pod that reached itself through a Service (hairpin)
        "hairpin": f"set hairpin {{ type {a} . {a} ; }}",
    }


PROTOCOLS = ("tcp", "udp", "sctp")


def slot_maps(proto: str) -> tuple[str, ...]:
    return (f"slots-{proto}", f"slots-cluster-{proto}", f"np-slots-{proto}", f"np-slots-cluster-{proto}")


def fixed_chains(f: Family, nodeport_match: str) -> dict[str, tuple[str, ...]]:
    """Chains whose rules do not depend on any Service. `nodeport_match` selects the local
    destinations node ports are served on."""
    ip = f.name
    key = f"{ip} daddr . meta l4proto . th dport"
    return {
        "services": (
            f"{key} vmap @service-ips",
            f"{nodeport_match} meta l4proto . th dport vmap @service-nodeports",
        ),
        "masquerading": (
            f"ct status dnat {ip} saddr . {ip} daddr @hairpin masquerade fully-random",
            f"meta mark & {MASQ_MARK} == 0 return",
            # clear the mark, so a packet that is re-routed is not masqueraded twice
            f"meta mark set meta mark ^ {MASQ_MARK}",
            "masquerade fully-random",
        ),
        "mark-for-masquerade": (f"meta mark set meta mark | {MASQ_MARK}",),
        "reject-chain": ("reject",),
        # externalTrafficPolicy Local without a local endpoint: the node's own connections are
        # short-circuited to cluster endpoints in nat output, which runs after this check
        "drop-unless-local": ("fib saddr type local return", "drop"),
        "service-endpoints-check": (f"{key} vmap @no-endpoint-services",),
        "nodeport-endpoints-check": (f"{nodeport_match} meta l4proto . th dport vmap @no-endpoint-nodeports",),
        "firewall-check": (f"{key} @firewall-ips {key} . {ip} saddr != @firewall-allow drop",),
        "cluster-ips-check": (
            f"{ip} daddr @cluster-ips reject",  # a live cluster IP, but no such port
            f"{ip} daddr @service-cidrs drop",  # a service address no Service holds
        ),
    }
