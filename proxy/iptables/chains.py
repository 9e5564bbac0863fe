"""The declarative table of podnet's iptables chains: the shared chains it owns and the jump
rules that hook them into the built-in chains (kube-proxy's iptablesJumpChains). Set-up and
`--cleanup` walk this same table, so clean-up can never miss a hook.

Per-service chains carry a prefix and a hash of the service port (and endpoint), as kube-proxy's
do: PODNET-SVC- (cluster endpoints), PODNET-SVL- (local endpoints), PODNET-EXT- (external
traffic), PODNET-FW- (load-balancer source ranges), PODNET-SEP- (one endpoint).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

PREFIX = "PODNET-"
MASQ_MARK = "0x4000"

# shared chains, per table
SERVICES = "PODNET-SERVICES"
EXTERNAL_SERVICES = "PODNET-EXTERNAL-SERVICES"
NODEPORTS = "PODNET-NODEPORTS"
POSTROUTING = "PODNET-POSTROUTING"
MARK_MASQ = "PODNET-MARK-MASQ"
FORWARD = "PODNET-FORWARD"
PROXY_FIREWALL = "PODNET-PROXY-FIREWALL"
FIREWALL = "PODNET-FIREWALL"

SHARED_CHAINS = {
    "filter": (SERVICES, EXTERNAL_SERVICES, NODEPORTS, FORWARD, PROXY_FIREWALL, FIREWALL),
    "nat": (SERVICES, NODEPORTS, POSTROUTING, MARK_MASQ),
}
TABLES = ("filter", "nat")
PER_SERVICE_PREFIXES = ("PODNET-SVC-", "PODNET-SVL-", "PODNET-EXT-", "PODNET-FW-", "PODNET-SEP-")


@dataclass(frozen=True)
class Jump:
    table: str
    builtin: str
    target: str
    match: str  # extra matches, as `iptables -S` prints them
    comment: str

    def spec(self) -> str:
        """The rule after `-A BUILTIN`, spelled exactly as iptables -S prints it."""
        match = f"{self.match} " if self.match else ""
        return f'{match}-m comment --comment "{self.comment}" -j {self.target}'


NEW = "-m conntrack --ctstate NEW"

# In the order the rules must end up in each built-in chain (all are inserted at its top).
JUMPS = (
    Jump("filter", "INPUT", PROXY_FIREWALL, NEW, "podnet load balancer firewall"),
    Jump("filter", "INPUT", NODEPORTS, "", "podnet health check service ports"),
    Jump("filter", "INPUT", EXTERNAL_SERVICES, NEW, "podnet externally-visible service portals"),
    Jump("filter", "INPUT", FIREWALL, "", "podnet firewall"),
    Jump("filter", "FORWARD", PROXY_FIREWALL, NEW, "podnet load balancer firewall"),
    Jump("filter", "FORWARD", FORWARD, "", "podnet forwarding rules"),
    Jump("filter", "FORWARD", SERVICES, NEW, "podnet service portals"),
    Jump("filter", "FORWARD", EXTERNAL_SERVICES, NEW, "podnet externally-visible service portals"),
    Jump("filter", "OUTPUT", PROXY_FIREWALL, NEW, "podnet load balancer firewall"),
    Jump("filter", "OUTPUT", SERVICES, NEW, "podnet service portals"),
    Jump("filter", "OUTPUT", FIREWALL, "", "podnet firewall"),
    Jump("nat", "PREROUTING", SERVICES, "", "podnet service portals"),
    Jump("nat", "OUTPUT", SERVICES, "", "podnet service portals"),
    Jump("nat", "POSTROUTING", POSTROUTING, "", "podnet postrouting rules"),
)

BUILTINS = {(j.table, j.builtin) for j in JUMPS}


def is_ours(chain: str) -> bool:
    return chain in SHARED_CHAINS["filter"] or chain in SHARED_CHAINS["nat"] or chain.startswith(PER_SERVICE_PREFIXES)


def _hash(text: str) -> str:
    # 64 bits of SHA-256 in hex (kube-proxy uses base32, which Python only has in pure Python:
    # too slow for 100,000 endpoint chains)
    return hashlib.sha256(text.encode()).hexdigest()[:16].upper()


def service_chain(kind: str, service_port: str, protocol: str) -> str:
    """PODNET-SVC-/SVL-/EXT-/FW- followed by a hash of the service port (at most 27 characters:
    iptables allows 28)."""
    return f"PODNET-{kind}-{_hash(service_port + protocol.lower())}"


def endpoint_chain(service_port: str, protocol: str, endpoint: str) -> str:
    return f"PODNET-SEP-{_hash(service_port + protocol.lower() + endpoint)}"
