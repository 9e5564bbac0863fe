"""NetworkPolicy semantics, as a table: (policies, pods) -> who may talk to whom on which port.
No root, no kernel: the model alone (policy/model.py), against the spec's rules and the
recipes of ahmetb/kubernetes-network-policy-recipes."""

from __future__ import annotations

import pytest
import yaml

from cluster.source import ADDED, DELETED, Event, ref_of
from policy import spec as specmod
from policy.cluster import ClusterView
from policy.model import node_rules, pod_rules


def pod(name, ip, labels=None, ns="default", node="n1", ports=()):
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": ns, "labels": labels or {}},
        "spec": {"nodeName": node, "containers": [{"name": "c", "ports": [
            {"name": n, "containerPort": p, "protocol": proto} for n, p, proto in ports]}]},
        "status": {"phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}]},
    }  # fmt: skip


def namespace(name, labels=None):
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels or {}}}


def netpol(text):
    obj = yaml.safe_load(text)
    obj.setdefault("apiVersion", "networking.k8s.io/v1")
    obj.setdefault("kind", "NetworkPolicy")
    return obj


def view_of(*objects):
    v = ClusterView()
    v.apply([Event(ADDED, ref_of(o), o) for o in objects])
    return v


CLUSTER = [
    namespace("default"),
    namespace("other", {"team": "ops"}),
    pod("web", "10.244.1.2", {"app": "web"}, ports=[("http", 8080, "TCP"), ("metrics", 9090, "TCP")]),
    pod("api", "10.244.1.3", {"app": "api"}),
    pod("client", "10.244.2.2", {"app": "client"}, node="n2"),
    pod("ops-client", "10.244.2.3", {"app": "client"}, ns="other", node="n2"),
    pod(
        "dns",
        "10.244.2.9",
        {"k8s-app": "kube-dns"},
        ns="kube-system",
        node="n2",
        ports=[("dns", 53, "UDP"), ("dns-tcp", 53, "TCP")],
    ),  # fmt: skip
]

DENY_WEB = """
metadata: {name: web-deny-all}
spec: {podSelector: {matchLabels: {app: web}}, ingress: []}
"""
ALLOW_CLIENTS = """
metadata: {name: web-allow-clients}
spec:
  podSelector: {matchLabels: {app: web}}
  ingress: [{from: [{podSelector: {matchLabels: {app: client}}}]}]
"""
ALLOW_OPS_NS = """
metadata: {name: web-allow-ops}
spec:
  podSelector: {matchLabels: {app: web}}
  ingress: [{from: [{namespaceSelector: {matchLabels: {team: ops}}}]}]
"""
ALLOW_OPS_CLIENTS_AND = """
metadata: {name: web-allow-ops-clients}
spec:
  podSelector: {matchLabels: {app: web}}
  ingress: [{from: [{namespaceSelector: {matchLabels: {team: ops}}, podSelector: {matchLabels: {app: nobody}}}]}]
"""
ALLOW_OPS_CLIENTS_OR = """
metadata: {name: web-allow-ops-or-nobody}
spec:
  podSelector: {matchLabels: {app: web}}
  ingress: [{from: [{namespaceSelector: {matchLabels: {team: ops}}}, {podSelector: {matchLabels: {app: nobody}}}]}]
"""
DEFAULT_DENY_NS = """
metadata: {name: default-deny-all}
spec: {podSelector: {}}
"""
DENY_EGRESS_DNS = """
metadata: {name: web-egress-dns}
spec:
  podSelector: {matchLabels: {app: web}}
  policyTypes: [Egress]
  egress: [{ports: [{port: 53, protocol: UDP}, {port: 53, protocol: TCP}]}]
"""
DENY_EGRESS = """
metadata: {name: web-deny-egress}
spec: {podSelector: {matchLabels: {app: web}}, policyTypes: [Egress]}
"""
IPBLOCK = """
metadata: {name: web-ipblock}
spec:
  podSelector: {matchLabels: {app: web}}
  ingress: [{from: [{ipBlock: {cidr: 10.244.2.0/24, except: [10.244.2.3/32]}}]}]
"""
PORT_LIMITED = """
metadata: {name: web-port-8080}
spec:
  podSelector: {matchLabels: {app: web}}
  ingress: [{ports: [{port: 8080}], from: [{podSelector: {}}]}]
"""
NAMED_PORT = """
metadata: {name: web-named}
spec:
  podSelector: {matchLabels: {app: web}}
  ingress: [{ports: [{port: metrics}]}]
"""
END_PORT = """
metadata: {name: web-range}
spec:
  podSelector: {matchLabels: {app: web}}
  ingress: [{ports: [{port: 8000, endPort: 8100}]}]
"""
EGRESS_NAMED = """
metadata: {name: web-egress-named}
spec:
  podSelector: {matchLabels: {app: web}}
  policyTypes: [Egress]
  egress: [{ports: [{port: dns, protocol: UDP}]}]
"""
INGRESS_ONLY_WITH_EGRESS_EMPTY = """
metadata: {name: web-egress-empty-list}
spec: {podSelector: {matchLabels: {app: web}}, egress: []}
"""

C, OPS, API, DNS = "10.244.2.2", "10.244.2.3", "10.244.1.3", "10.244.2.9"
CASES = [
    # policies, target, direction, peer, protocol, port, allowed
    ([], "web", "ingress", C, "TCP", 8080, True),
    ([DENY_WEB], "web", "ingress", C, "TCP", 8080, False),
    ([DENY_WEB], "web", "ingress", "10.244.1.2", "TCP", 8080, True),  # itself, through its Service
    ([DENY_WEB], "api", "ingress", C, "TCP", 8080, True),  # not selected: not isolated
    ([DENY_WEB], "web", "egress", API, "TCP", 80, True),  # Ingress only: egress untouched
    ([DENY_WEB, ALLOW_CLIENTS], "web", "ingress", C, "TCP", 8080, True),  # additive
    ([DENY_WEB, ALLOW_CLIENTS], "web", "ingress", API, "TCP", 8080, False),
    ([ALLOW_CLIENTS], "web", "ingress", OPS, "TCP", 8080, False),  # podSelector alone: own namespace
    ([ALLOW_OPS_NS], "web", "ingress", OPS, "TCP", 8080, True),
    ([ALLOW_OPS_NS], "web", "ingress", C, "TCP", 8080, False),
    ([ALLOW_OPS_CLIENTS_AND], "web", "ingress", OPS, "TCP", 8080, False),  # AND in one peer
    ([ALLOW_OPS_CLIENTS_OR], "web", "ingress", OPS, "TCP", 8080, True),  # OR across peers
    ([DEFAULT_DENY_NS], "api", "ingress", C, "TCP", 80, False),  # empty podSelector: all
    ([DEFAULT_DENY_NS], "dns", "ingress", C, "UDP", 53, True),  # other namespace
    ([DEFAULT_DENY_NS], "api", "egress", C, "TCP", 80, True),  # Ingress only by default
    ([DENY_EGRESS], "web", "egress", DNS, "UDP", 53, False),
    ([DENY_EGRESS], "web", "ingress", C, "TCP", 8080, True),
    ([DENY_EGRESS_DNS], "web", "egress", DNS, "UDP", 53, True),
    ([DENY_EGRESS_DNS], "web", "egress", "8.8.8.8", "TCP", 53, True),  # no `to`: any address
    ([DENY_EGRESS_DNS], "web", "egress", API, "TCP", 80, False),
    ([IPBLOCK], "web", "ingress", C, "TCP", 8080, True),
    ([IPBLOCK], "web", "ingress", OPS, "TCP", 8080, False),  # except
    ([IPBLOCK], "web", "ingress", API, "TCP", 8080, False),  # outside the cidr
    ([PORT_LIMITED], "web", "ingress", API, "TCP", 8080, True),
    ([PORT_LIMITED], "web", "ingress", API, "TCP", 9090, False),
    ([PORT_LIMITED], "web", "ingress", API, "UDP", 8080, False),  # protocol defaults to TCP
    ([PORT_LIMITED], "web", "ingress", C, "TCP", 8080, True),  # podSelector {}: own namespace, all
    ([PORT_LIMITED], "web", "ingress", OPS, "TCP", 8080, False),
    ([NAMED_PORT], "web", "ingress", C, "TCP", 9090, True),  # resolved on the target pod
    ([NAMED_PORT], "web", "ingress", C, "TCP", 8080, False),
    ([END_PORT], "web", "ingress", C, "TCP", 8100, True),
    ([END_PORT], "web", "ingress", C, "TCP", 8101, False),
    ([EGRESS_NAMED], "web", "egress", DNS, "UDP", 53, True),  # resolved on the destination
    ([EGRESS_NAMED], "web", "egress", API, "UDP", 53, False),  # api has no port named dns
    ([INGRESS_ONLY_WITH_EGRESS_EMPTY], "web", "egress", API, "TCP", 80, True),  # egress: [] is not Egress
    ([INGRESS_ONLY_WITH_EGRESS_EMPTY], "web", "ingress", API, "TCP", 8080, False),
]


@pytest.mark.parametrize(("policies", "target", "direction", "peer", "proto", "port", "allowed"), CASES)
def test_semantics(policies, target, direction, peer, proto, port, allowed):
    v = view_of(*CLUSTER, *(netpol(p) for p in policies))
    target_pod = next(p for p in v.pods.values() if p.name == target)
    got = pod_rules(target_pod, v).allows(direction, peer, proto, port)
    assert (got is not None) == allowed, got


def test_allowing_policy_is_named():
    v = view_of(*CLUSTER, netpol(DENY_WEB), netpol(ALLOW_CLIENTS))
    rules = pod_rules(v.pods["default/web"], v)
    assert rules.ingress_isolated_by == ("default/web-allow-clients", "default/web-deny-all")
    assert rules.allows("ingress", C, "TCP", 1) == "default/web-allow-clients"


def test_namespace_label_from_the_api_server():
    """kubernetes.io/metadata.name selects a namespace even without labels of its own."""
    pol = netpol("""
metadata: {name: from-other}
spec:
  podSelector: {}
  ingress: [{from: [{namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: other}}}]}]
""")
    v = view_of(*CLUSTER, pol)
    assert pod_rules(v.pods["default/web"], v).allows("ingress", OPS, "TCP", 1)
    assert not pod_rules(v.pods["default/web"], v).allows("ingress", C, "TCP", 1)


def test_match_expressions():
    pol = netpol("""
metadata: {name: expr}
spec:
  podSelector: {matchExpressions: [{key: app, operator: In, values: [web, api]}]}
  ingress: [{from: [{podSelector: {matchExpressions: [{key: app, operator: NotIn, values: [api]}]}}]}]
""")
    v = view_of(*CLUSTER, pol)
    assert {r.pod.name for r in node_rules(v, "n1")} == {"web", "api"}
    assert pod_rules(v.pods["default/api"], v).allows("ingress", C, "TCP", 1)
    assert not pod_rules(v.pods["default/web"], v).allows("ingress", API, "TCP", 1)


def test_pod_changes_follow():
    v = view_of(*CLUSTER, netpol(ALLOW_CLIENTS))
    assert not pod_rules(v.pods["default/web"], v).allows("ingress", API, "TCP", 1)
    relabelled = pod("api", API, {"app": "client"})
    assert v.apply([Event(ADDED, ref_of(relabelled), relabelled)])
    assert pod_rules(v.pods["default/web"], v).allows("ingress", API, "TCP", 1)
    assert v.apply([Event(DELETED, ref_of(relabelled), None)])
    assert not pod_rules(v.pods["default/web"], v).allows("ingress", API, "TCP", 1)


def test_pods_without_address_or_finished_take_no_part():
    pending = pod("p", "10.244.1.9", {"app": "client"})
    pending["status"] = {"phase": "Pending"}
    done = pod("d", "10.244.1.8", {"app": "client"})
    done["status"]["phase"] = "Succeeded"
    v = view_of(pending, done)
    assert v.pods == {}


BAD = [
    ("spec: {podSelector: {}, ingress: [{from: [{}]}]}",
     "spec.ingress[0].from[0]: Required value: must specify a peer"),
    ("spec: {podSelector: {}, ingress: [{from: [{ipBlock: {cidr: 10.0.0.0/8}, podSelector: {}}]}]}",
     "spec.ingress[0].from[0]: Forbidden: may not specify both ipBlock and another peer"),
    ("spec: {podSelector: {}, ingress: [{from: [{ipBlock: {cidr: 10.0.0.0/8, except: [11.0.0.0/24]}}]}]}",
     "spec.ingress[0].from[0].ipBlock.except[0]: Invalid value"),
    ("spec: {podSelector: {}, ingress: [{from: [{ipBlock: {cidr: 10.0.0.1/8}}]}]}",
     "spec.ingress[0].from[0].ipBlock.cidr: Invalid value"),
    ("spec: {podSelector: {}, egress: [{ports: [{port: 80, endPort: 79}]}]}",
     "spec.egress[0].ports[0].endPort: Invalid"),
    ("spec: {podSelector: {}, egress: [{ports: [{port: http, endPort: 90}]}]}", "spec.egress[0].ports[0].endPort:"),
    ("spec: {podSelector: {}, egress: [{ports: [{endPort: 90}]}]}", "spec.egress[0].ports[0].endPort: Required"),
    ("spec: {podSelector: {}, egress: [{ports: [{port: 70000}]}]}", "spec.egress[0].ports[0].port: Invalid"),
    ("spec: {podSelector: {}, egress: [{ports: [{protocol: ICMP}]}]}", "spec.egress[0].ports[0].protocol: Unsupported"),
    ("spec: {podSelector: {}, policyTypes: [Both]}", "spec.policyTypes[0]: Unsupported value"),
    ("spec: {podSelector: {}, ingres: []}", "spec.ingres: unknown field"),
    ("spec: {podSelector: {matchExpressions: [{key: a, operator: In}]}}",
     "spec.podSelector.matchExpressions[0].values: Required value"),
    ("spec: {podSelector: {matchLabels: {'a b': x}}}", "spec.podSelector.matchLabels: Invalid value"),
    ("spec: {podSelector: {}, ingress: [{from: [{podSelector: {}}], to: []}]}", "spec.ingress[0].to: unknown field"),
]  # fmt: skip


@pytest.mark.parametrize(("body", "message"), BAD)
def test_refused_with_path(body, message):
    obj = netpol("metadata: {name: bad}\n" + body)
    with pytest.raises(specmod.PolicyError) as e:
        specmod.parse(obj)
    assert message in str(e.value)


def test_defaults():
    p = specmod.parse(netpol("metadata: {name: x}\nspec: {podSelector: {}, egress: [{}]}"))
    assert p.policy_types == ("Ingress", "Egress") and p.namespace == "default"
    p = specmod.parse(netpol("metadata: {name: x}\nspec: {podSelector: {}, ingress: [{ports: [{port: 80}]}]}"))
    assert p.policy_types == ("Ingress",) and p.ingress[0].ports[0].protocol == "TCP"


def test_an_object_not_as_the_api_holds_it_is_skipped_not_fatal():
    bad = pod("bad", "10.244.1.50", {"app": "client"})
    bad["metadata"]["labels"] = ["not", "a", "map"]
    good = pod("good", "10.244.1.51", {"app": "client"})
    v = view_of(bad, good)
    assert list(v.pods) == ["default/good"]
