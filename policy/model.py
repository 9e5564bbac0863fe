"""What NetworkPolicy allows each pod, independent of how it is enforced.

The spec's semantics, exactly:
- a pod is isolated for ingress (egress) when any policy of its namespace selects it and has
  Ingress (Egress) in its policyTypes (defaulted: Ingress always, Egress with egress rules);
- an isolated pod's traffic in that direction is allowed when any rule of any policy that
  selects it allows it (policies are additive; none can deny);
- a rule with no peers allows every address, with no ports every port and protocol;
- a peer with podSelector takes pods of the policy's namespace, with namespaceSelector every
  pod of the namespaces it selects, with both the pods matching both (AND, one peer); an
  ipBlock takes its CIDR but its excepts;
- a named port is resolved on the pod that owns it: the target pod for ingress, each
  destination pod for egress (a name no container port has allows nothing);
- reply traffic of an allowed connection, traffic from the node to its own pods (kubelet's
  probes) and a pod's traffic to itself (through its own Service) are allowed: the renderer's
  job, as none depends on a policy.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from policy.cluster import ClusterView, PodInfo
from policy.selectors import LabelSelector
from policy.spec import NetworkPolicy, Peer, PolicyPort, PolicyRule


@dataclass(frozen=True, order=True)
class Block:
    """Addresses: a CIDR but its excepts (a pod is its address as /32 or /128)."""

    cidr: str
    excepts: tuple[str, ...] = ()

    @property
    def version(self) -> int:
        return 6 if ":" in self.cidr else 4  # cidr is canonical (spec.py, pod_blocks)

    def holds(self, ip: str) -> bool:
        addr = ipaddress.ip_address(ip)
        if addr.version != self.version or addr not in ipaddress.ip_network(self.cidr):
            return False
        return not any(addr in ipaddress.ip_network(e) for e in self.excepts)


@dataclass(frozen=True, order=True)
class PortRange:
    protocol: str
    first: int | None = None  # None: every port of the protocol
    last: int | None = None


@dataclass(frozen=True)
class Allow:
    """Traffic one rule of one policy allows: from (ingress) or to (egress) `addresses`
    (None: any) on `ports` (None: any port, any protocol). An empty tuple allows nothing."""

    policy: str  # namespace/name
    rule: str  # "ingress[0]", "egress[1]"
    addresses: tuple[Block, ...] | None
    ports: tuple[PortRange, ...] | None

    @property
    def allows_nothing(self) -> bool:
        return self.addresses == () or self.ports == ()


@dataclass(frozen=True)
class PodRules:
    pod: PodInfo
    ingress_isolated_by: tuple[str, ...]  # the policies that isolate it (namespace/name)
    egress_isolated_by: tuple[str, ...]
    ingress: tuple[Allow, ...]
    egress: tuple[Allow, ...]

    @property
    def isolated(self) -> bool:
        return bool(self.ingress_isolated_by or self.egress_isolated_by)

    def allows(self, direction: str, peer_ip: str, protocol: str, port: int) -> str | None:
        """The policy that allows this (for the semantics tests and explanations), or None.
        direction "ingress": from peer_ip to this pod's port; "egress": to peer_ip:port."""
        isolated = self.ingress_isolated_by if direction == "ingress" else self.egress_isolated_by
        if not isolated:
            return "(not isolated)"
        if peer_ip in self.pod.ips:
            return "(itself)"
        for a in self.ingress if direction == "ingress" else self.egress:
            if a.addresses is not None and not any(b.holds(peer_ip) for b in a.addresses):
                continue
            if a.ports is not None and not any(_port_in(r, protocol, port) for r in a.ports):
                continue
            return a.policy
        return None


def _port_in(r: PortRange, protocol: str, port: int) -> bool:
    if r.protocol != protocol:
        return False
    return r.first is None or r.first <= port <= (r.last if r.last is not None else r.first)


def selects(policy: NetworkPolicy, pod: PodInfo) -> bool:
    return policy.namespace == pod.namespace and policy.pod_selector.matches(pod.labels)


def peer_pods(peer: Peer, policy_ns: str, view: ClusterView) -> list[PodInfo]:
    """The pods a podSelector/namespaceSelector peer takes (an ipBlock peer takes none)."""
    if peer.ip_block is not None:
        return []
    pods = peer.pod_selector or LabelSelector()
    out = []
    for p in view.pods.values():
        if peer.namespace_selector is None:
            in_ns = p.namespace == policy_ns
        else:
            in_ns = peer.namespace_selector.matches(view.labels_of_namespace(p.namespace))
        if in_ns and pods.matches(p.labels):
            out.append(p)
    return sorted(out, key=lambda p: p.key)


def pod_blocks(pods: list[PodInfo]) -> list[Block]:
    return [Block(f"{ip}/{32 if ipaddress.ip_address(ip).version == 4 else 128}") for p in pods for ip in p.ips]


def peer_blocks(rule: PolicyRule, policy_ns: str, view: ClusterView) -> tuple[Block, ...] | None:
    if not rule.peers:
        return None
    out: list[Block] = []
    for peer in rule.peers:
        if peer.ip_block is not None:
            out.append(Block(peer.ip_block.cidr, peer.ip_block.excepts))
        else:
            out += pod_blocks(peer_pods(peer, policy_ns, view))
    return tuple(sorted(set(out)))


def numeric_range(p: PolicyPort) -> PortRange:
    if p.port is None:
        return PortRange(p.protocol)
    assert isinstance(p.port, int)
    return PortRange(p.protocol, p.port, p.end_port if p.end_port is not None else p.port)


def ingress_allows(policy: NetworkPolicy, pod: PodInfo, view: ClusterView, memo: dict | None = None) -> list[Allow]:
    out = []
    for i, rule in enumerate(policy.ingress):
        ports: tuple[PortRange, ...] | None = None
        if rule.ports:
            ranges = []
            for p in rule.ports:
                if isinstance(p.port, str):  # named: this pod's container port of that name
                    number = pod.named_port(p.port, p.protocol)
                    if number is not None:
                        ranges.append(PortRange(p.protocol, number, number))
                else:
                    ranges.append(numeric_range(p))
            ports = tuple(sorted(set(ranges)))
        blocks = _memo(memo, ("from", policy.key, i), lambda r=rule: peer_blocks(r, policy.namespace, view))
        out.append(Allow(policy.key, f"ingress[{i}]", blocks, ports))
    return out


def destination_pods(rule: PolicyRule, policy_ns: str, view: ClusterView) -> list[PodInfo]:
    """Pods an egress rule's peers take (for named ports): selected ones, or those inside an
    ipBlock, or with no peers every pod."""
    if not rule.peers:
        return sorted(view.pods.values(), key=lambda p: p.key)
    found: dict[str, PodInfo] = {}
    for peer in rule.peers:
        if peer.ip_block is not None:
            block = Block(peer.ip_block.cidr, peer.ip_block.excepts)
            found.update({p.key: p for p in view.pods.values() if any(block.holds(ip) for ip in p.ips)})
        else:
            found.update({p.key: p for p in peer_pods(peer, policy_ns, view)})
    return [found[k] for k in sorted(found)]


def egress_allows(policy: NetworkPolicy, view: ClusterView) -> list[Allow]:
    out = []
    for i, rule in enumerate(policy.egress):
        where = f"egress[{i}]"
        blocks = peer_blocks(rule, policy.namespace, view)
        if not rule.ports:
            out.append(Allow(policy.key, where, blocks, None))
            continue
        numeric = [numeric_range(p) for p in rule.ports if not isinstance(p.port, str)]
        if numeric:
            out.append(Allow(policy.key, where, blocks, tuple(sorted(set(numeric)))))
        named = [p for p in rule.ports if isinstance(p.port, str)]
        if named:  # each destination pod's own number for the name; pods alike share one Allow
            by_ports: dict[tuple[PortRange, ...], list[PodInfo]] = {}
            for dest in destination_pods(rule, policy.namespace, view):
                ranges = {
                    PortRange(p.protocol, n, n)
                    for p in named
                    if isinstance(p.port, str) and (n := dest.named_port(p.port, p.protocol)) is not None
                }
                if ranges:
                    by_ports.setdefault(tuple(sorted(ranges)), []).append(dest)
            for ports, dests in sorted(by_ports.items()):
                out.append(Allow(policy.key, where, tuple(sorted(pod_blocks(dests))), ports))
    return out


def _memo(memo: dict | None, key: tuple, make):
    """What does not depend on the target pod is worked out once per sync, not once per pod."""
    if memo is None:
        return make()
    if key not in memo:
        memo[key] = make()
    return memo[key]


def pod_rules(pod: PodInfo, view: ClusterView, memo: dict | None = None) -> PodRules:
    ingress_by, egress_by = [], []
    ingress: list[Allow] = []
    egress: list[Allow] = []
    for key in sorted(view.policies):
        policy = view.policies[key]
        if not selects(policy, pod):
            continue
        if policy.isolates_ingress:
            ingress_by.append(key)
            ingress += ingress_allows(policy, pod, view, memo)
        if policy.isolates_egress:
            egress_by.append(key)
            egress += _memo(memo, ("egress", key), lambda p=policy: egress_allows(p, view))
    return PodRules(pod, tuple(ingress_by), tuple(egress_by), tuple(ingress), tuple(egress))


def node_rules(view: ClusterView, node: str) -> list[PodRules]:
    """The rules of every pod on `node` that some policy isolates, by pod."""
    out = []
    memo: dict = {}
    for key in sorted(view.pods):
        pod = view.pods[key]
        if pod.node == node:
            rules = pod_rules(pod, view, memo)
            if rules.isolated:
                out.append(rules)
    return out
