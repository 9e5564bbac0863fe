"""type: LoadBalancer in a lab, as an L2 load balancer (MetalLB's layer-2 mode) does it.

A pool of addresses on the underlay (`network.loadBalancerPool`, default: the upper quarter
of the first underlay segment) hands one address to each LoadBalancer Service
(status.loadBalancer.ingress, EXTERNAL-IP); one node announces it: the address sits on that
node's underlay link, so the node answers ARP for it, and the node's proxy turns traffic to it
into traffic to the Service's pods (kube-proxy's rules for load-balancer ingress IPs). When
the Service goes, the node stops announcing and the address returns to the pool.
"""

from __future__ import annotations

import ipaddress

from podnet.lab.node import ip_batch
from podnet.lab.pod import log
from podnet.lab.spec import LabSpec

UPLINK = "eth0"  # a node's link to the underlay


def pool(spec: LabSpec) -> list[str]:
    """The pool's addresses, lowest first."""
    net = spec.network
    if net.lb_pool:
        return [str(ip) for ip in ipaddress.ip_network(net.lb_pool).hosts()]
    segment = ipaddress.ip_network(spec.segments()[0].cidr)
    hosts = list(segment.hosts())
    return [str(ip) for ip in hosts[len(hosts) - len(hosts) // 4 :]]


class Announcer:
    """Keeps each LoadBalancer address on exactly one node's uplink."""

    def __init__(self, nodes: dict[str, dict]):
        self.nodes = nodes
        self.announced: dict[str, str] = {}  # address -> node

    def sync(self, wanted: dict[str, str], ready_nodes: list[str]) -> bool:
        """wanted: NAMESPACE/NAME -> address. True when something changed."""
        addresses = set(wanted.values())
        changed = False
        for ip, node in list(self.announced.items()):
            if ip not in addresses or node not in ready_nodes:
                ip_batch([f"addr del {ip}/32 dev {UPLINK}"], netns=self.nodes[node]["netns"], check=False)
                del self.announced[ip]
                log(f"load balancer {ip}: no longer announced by {node}")
                changed = True
        if not ready_nodes:
            return changed
        for key, ip in sorted(wanted.items()):
            if ip in self.announced:
                continue
            # spread the addresses: the node that announces the fewest
            node = min(ready_nodes, key=lambda n: sum(1 for v in self.announced.values() if v == n))
            netns = self.nodes[node]["netns"]
            ip_batch([f"addr replace {ip}/32 dev {UPLINK}"], netns=netns, check=False)
            # a gratuitous ARP would tell the underlay at once; its neighbours ask on first use
            self.announced[ip] = node
            log(f"load balancer {ip} ({key}): announced by {node}")
            changed = True
        return changed

    def record(self) -> dict[str, str]:
        return dict(self.announced)
