"""The nftables mode's transactions: partial syncs send only what changed, and a table built up
by many partial syncs is exactly the table one full sync of the same state builds. The proxier
runs in-process; its rules go into namespaces the tests made (semantics with real traffic are
in test_semantics.py, which runs for this mode too)."""

from __future__ import annotations

import itertools
import json
import random
import re

import pytest

from proxy.backend import ApplyError
from proxy.model import NodeContext
from proxy.nftables.backend import NftablesBackend
from proxy.objects import ServiceCIDR, ServicePort
from proxy.proxier import Proxier
from proxy.trackers import Trackers
from tests.support import synthetic as S

NODE = NodeContext(name=S.NODE, node_ips=("192.168.1.1",), cluster_cidrs=("10.128.0.0/9",))


def proxier(ns) -> tuple[Proxier, Trackers, NftablesBackend]:
    trackers = Trackers(S.NODE)
    backend = NftablesBackend(NODE, netns=ns.name)
    return Proxier(NODE, backend, trackers, clean_conntrack=False), trackers, backend


def table(ns) -> dict:
    """The table as comparable data: chains' rules in order, maps' and sets' elements sorted."""
    out = json.loads(ns.run("nft", "-j", "list", "table", "ip", "podnet").stdout)["nftables"]
    chains: dict[str, list] = {}
    sets: dict[str, list] = {}
    for item in out:
        if "chain" in item:
            chains.setdefault(item["chain"]["name"], [])
        elif "rule" in item:
            chains.setdefault(item["rule"]["chain"], []).append(json.dumps(item["rule"]["expr"], sort_keys=True))
        elif "set" in item or "map" in item:
            s = item.get("set") or item.get("map")
            sets[s["name"]] = sorted(json.dumps(e, sort_keys=True) for e in s.get("elem", []))
    return {"chains": chains, "sets": sets}


def assert_same(a: dict, b: dict, where) -> None:
    for part in ("chains", "sets"):
        for name in sorted(a[part].keys() | b[part].keys()):
            assert a[part].get(name) == b[part].get(name), (where, part, name)


def a_service(i: int, rng: random.Random):
    """One of the shapes the renderer distinguishes, chosen at random."""
    kind = rng.choice(["plain", "plain", "nodeport", "local", "affinity", "lb", "empty"])
    spec: dict = {}
    if kind == "nodeport":
        spec = {"type": "NodePort", "ports": (ServicePort("http", "TCP", 80, 30000 + i),)}
    elif kind == "local":
        spec = {"type": "NodePort", "external_traffic_local": True, "external_ips": (f"192.168.50.{i}",),
                "ports": (ServicePort("http", "TCP", 80, 30000 + i),)}  # fmt: skip
    elif kind == "affinity":
        spec = {"session_affinity_seconds": 30 + i}
    elif kind == "lb":
        spec = {"type": "LoadBalancer", "load_balancer_ips": (f"192.168.60.{i}",),
                "load_balancer_source_ranges": ("192.168.1.0/24",),
                "ports": (ServicePort("http", "TCP", 80, 31000 + i),)}  # fmt: skip
    endpoints = 0 if kind == "empty" else rng.randint(1, 5)
    return S.service(i, **spec), S.endpoint_slice(i, endpoints, local={j for j in range(endpoints) if j % 2 == 0})


@pytest.mark.integration
def test_partial_syncs_build_the_same_table_as_a_full_sync(netns):
    rng = random.Random(7)
    inc_ns, fresh_ns = netns("pnft-inc"), netns("pnft-fresh")
    inc, inc_trackers, _ = proxier(inc_ns)
    objects = {i: a_service(i, rng) for i in range(12)}
    S.feed(inc_trackers, *[o for pair in objects.values() for o in pair])
    assert inc.sync().full
    for step in range(25):
        i = rng.randrange(16)
        action = rng.choice(["replace", "replace", "scale", "remove"])
        if action == "remove" and i in objects:
            for obj in objects.pop(i):
                S.remove(inc_trackers, obj)
        elif action == "scale" and i in objects:
            svc, _ = objects[i]
            n = rng.randint(0, 7)
            objects[i] = (svc, S.endpoint_slice(i, n, local={0, 3}))
            S.feed(inc_trackers, objects[i][1])
        else:
            objects[i] = a_service(i, rng)
            S.feed(inc_trackers, *objects[i])
        result = inc.sync()
        assert not result.full, step  # (nothing to apply when the step changed nothing)
        # the same state from scratch, in another namespace
        fresh, fresh_trackers, fresh_backend = proxier(fresh_ns)
        fresh_backend.cleanup()
        S.feed(fresh_trackers, *[o for pair in objects.values() for o in pair])
        fresh.sync()
        assert_same(table(inc_ns), table(fresh_ns), (step, action, i))
    # everything gone: only the fixed chains stay, every map is empty
    for pair in objects.values():
        for obj in pair:
            S.remove(inc_trackers, obj)
    inc.sync()
    t = table(inc_ns)
    assert not any(c.startswith(("int-", "ext", "np-", "svc-", "svl-", "sep-", "aff-")) for c in t["chains"]), t
    assert not [c for c in t["sets"] if re.fullmatch(r"(np-)?(int|ext|extl|pickc)-[a-z]+-\d+|aff-.*", c)], t
    # only the node's own elements stay: node ports answer on its primary IP
    assert all(not elems for name, elems in t["sets"].items() if name != "nodeport-ips"), t["sets"]


@pytest.mark.integration
def test_one_endpoint_added_sends_a_handful_of_lines(netns):
    ns = netns("pnft-small")
    px, trackers, backend = proxier(ns)
    S.feed(trackers, *[S.service(i) for i in range(300)], *[S.endpoint_slice(i, 10) for i in range(300)])
    px.sync()
    S.feed(trackers, S.endpoint_slice(123, 11))
    sent: list[str] = []
    apply = backend.apply
    backend.apply = lambda tx: (sent.append(tx.text()), apply(tx))[1]
    px.sync()
    lines = sent[0].splitlines()
    # the new slot and the hairpin pair of the new endpoint, the Service moved from the
    # 10-endpoint count set to the 11-endpoint one (a new set and rule: the first such Service)
    assert f"add element ip podnet slots-tcp {{ {S.cluster_ip(123)} . 80 . 10 : {S.endpoint_ip(123, 10)} . 8080 }}" in (
        lines
    )
    assert "add set ip podnet int-tcp-11 { type ipv4_addr . inet_service ; }" in lines
    assert len(lines) <= 8, lines
    assert S.endpoint_ip(123, 10) in ns.run("nft", "list", "map", "ip", "podnet", "slots-tcp").stdout
    # the next one is element changes only: no rule, no verdict (which would make the kernel
    # re-validate the whole table), and the 10-endpoint set stays while others are in it
    S.feed(trackers, S.endpoint_slice(124, 11))
    sent.clear()
    px.sync()
    lines = sent[0].splitlines()
    assert all(line.startswith(("add element", "delete element")) and "goto" not in line for line in lines), lines
    assert len(lines) <= 4, lines


@pytest.mark.integration
def test_refused_transaction_keeps_the_table_and_the_next_sync_rebuilds_it(netns):
    ns = netns("pnft-fail")
    px, trackers, backend = proxier(ns)
    S.feed(trackers, S.service(1), S.endpoint_slice(1, 2))
    px.sync()
    before = table(ns)
    # someone else's rule in our table refers to a count set the next sync deletes: the
    # kernel refuses the whole transaction
    ns.run("nft", "add", "chain", "ip", "podnet", "test-blocker")
    blocker = ["ip", "daddr", ".", "th", "dport", "@int-tcp-2", "accept"]
    ns.run("nft", "add", "rule", "ip", "podnet", "test-blocker", *blocker)
    S.feed(trackers, S.endpoint_slice(1, 3))
    with pytest.raises(ApplyError):
        px.sync()
    after = table(ns)
    after["chains"].pop("test-blocker")
    assert after == before  # nothing of the transaction happened
    assert backend.shadow is None
    result = px.sync()  # a full rebuild, in one transaction
    assert result.full and S.endpoint_ip(1, 2) in ns.run("nft", "list", "map", "ip", "podnet", "slots-tcp").stdout


@pytest.mark.integration
def test_service_cidrs_and_cleanup_touch_only_podnet_tables(netns):
    ns = netns("pnft-clean")
    ns.run("nft", "add", "table", "ip", "mine")
    ns.run("nft", "add", "chain", "ip", "mine", "c", "{ type filter hook input priority 0 ; }")
    ns.run("nft", "add", "rule", "ip", "mine", "c", "tcp", "dport", "22", "accept")
    px, trackers, backend = proxier(ns)
    S.feed(trackers, S.service(1), S.endpoint_slice(1, 1), ServiceCIDR(name="kubernetes", cidrs=("10.96.0.0/16",)))
    assert px.sync().full
    assert "10.96.0.0/16" in ns.run("nft", "list", "set", "ip", "podnet", "service-cidrs").stdout
    assert backend.cleanup() == ["delete table ip podnet"]
    assert ns.run("nft", "list", "tables").stdout.split() == ["table", "ip", "mine"]
    assert "dport 22 accept" in ns.run("nft", "list", "table", "ip", "mine").stdout
    assert backend.cleanup() == []  # nothing of ours left: nothing to do


def test_golden_full_sync():
    """The whole first transaction for a small cluster (affinity, Local policies, a load
    balancer with source ranges, a Service without endpoints), as text. Regenerate with
    PODNET_UPDATE_GOLDEN=1 after a deliberate change, and read the diff."""
    import os

    from proxy.nftables.layout import FAMILIES
    from proxy.nftables.shadow import plan
    from tests.proxy.test_render_iptables import GOLDEN, OBJECTS
    from tests.proxy.test_render_iptables import model_of as iptables_model_of

    model, _, changed = iptables_model_of(OBJECTS)
    text = plan(model, changed, True, None, FAMILIES[4]).text()
    path = os.path.join(GOLDEN, "nftables_full.txt")
    if os.environ.get("PODNET_UPDATE_GOLDEN"):
        with open(path, "w") as f:
            f.write(text)
    with open(path) as f:
        assert text == f.read()


PICKERS = """
apiVersion: v1
kind: Service
metadata: {name: a}
spec: {clusterIP: 10.96.0.20, ports: [{name: http, port: 80}]}
---
apiVersion: v1
kind: Service
metadata: {name: b}
spec: {clusterIP: 10.96.0.21, ports: [{name: http, port: 80}]}
---
apiVersion: v1
kind: Service
metadata: {name: c}
spec:
  type: NodePort
  clusterIP: 10.96.0.22
  externalTrafficPolicy: Local
  ports: [{name: http, port: 80, nodePort: 30080}]
"""


def endpoints_of(service: str, count: int, protocol: str = "TCP", name: str = "http") -> str:
    eps = ", ".join(f"{{addresses: [10.244.{i % 2 + 1}.{10 + i}], nodeName: n{i % 2 + 1}}}" for i in range(count))
    return f"""
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {{name: {service}-1, labels: {{kubernetes.io/service-name: {service}}}}}
addressType: IPv4
ports: [{{name: {name}, port: 8080, protocol: {protocol}}}]
endpoints: [{eps}]
"""


PICKER_OBJECTS = PICKERS + endpoints_of("a", 3) + endpoints_of("b", 3) + endpoints_of("c", 4)


def test_golden_pickers():
    """Shared picker chains and their count sets: Services with 3 and 4 endpoints, a Local
    node port (its local endpoints through extl, pods and the node through pickc)."""
    import os

    from proxy.nftables.layout import FAMILIES
    from proxy.nftables.shadow import plan
    from tests.proxy.test_render_iptables import GOLDEN, model_of

    model, _, changed = model_of(PICKER_OBJECTS)
    text = plan(model, changed, True, None, FAMILIES[4]).text()
    path = os.path.join(GOLDEN, "nftables_pickers.txt")
    if os.environ.get("PODNET_UPDATE_GOLDEN"):
        with open(path, "w") as f:
            f.write(text)
    with open(path) as f:
        assert text == f.read()


def test_endpoint_count_change_is_element_changes_only():
    """A Service gaining an endpoint moves between count sets: no rule, no verdict changes
    (either would make the kernel re-validate the whole table), unless its new count is new
    to the table or its old one leaves it."""
    from proxy.nftables.layout import FAMILIES
    from proxy.nftables.shadow import plan
    from proxy.objects import load_text
    from proxy.source import object_key
    from tests.proxy.test_render_iptables import model_of

    model, trackers, changed = model_of(PICKER_OBJECTS)
    first = plan(model, changed, True, None, FAMILIES[4])
    first.text()  # a rebuild is planned as its text is produced
    shadow = first.state

    def grow(service: str, count: int) -> list[str]:
        for o in load_text(endpoints_of(service, count), "x").objects:
            trackers.update(object_key(o), type(o), o)
        tx = plan(model, set(model.update(trackers, trackers.drain())), False, shadow, FAMILIES[4])
        return tx.text().splitlines()

    lines = grow("a", 4)  # b keeps the 3-endpoint set, c holds the 4-endpoint one
    assert all(line.startswith(("add element", "delete element")) for line in lines), lines
    assert not any("goto" in line for line in lines), lines
    lines = grow("b", 5)  # the last with 3 leaves, the first with 5 arrives: the picker's rules change
    assert "add set ip podnet int-tcp-5 { type ipv4_addr . inet_service ; }" in lines
    assert "delete set ip podnet int-tcp-3" in lines


def test_a_key_two_services_claim_passes_to_the_other_when_one_goes():
    """Two Services on one address and port (a conflict the API server normally prevents):
    the rebuild writes the first one's slots; when it goes, the other's take their place."""
    from proxy.nftables.layout import FAMILIES
    from proxy.nftables.shadow import plan
    from proxy.objects import Service
    from proxy.source import object_key
    from tests.proxy.test_render_iptables import model_of

    twins = PICKERS.replace("clusterIP: 10.96.0.21", "clusterIP: 10.96.0.20")
    model, trackers, changed = model_of(
        twins + endpoints_of("a", 2) + endpoints_of("b", 3).replace("10.244.", "10.245.")
    )
    first = plan(model, changed, True, None, FAMILIES[4])
    text = first.text()
    assert "10.96.0.20 . 80 . 0 : 10.244.1.10 . 8080" in text and ". 80 . 0 : 10.245" not in text  # a's slot 0
    a = next(k for k in trackers.services.state if k[1] == "a")
    trackers.update(object_key(trackers.services.state[a]), Service, None)
    lines = plan(model, set(model.update(trackers, trackers.drain())), False, first.state, FAMILIES[4]).text()
    lines = lines.splitlines()
    assert "delete element ip podnet int-tcp-2 { 10.96.0.20 . 80 }" in lines  # b's 3-endpoint rule picks now
    slots = "add element ip podnet slots-tcp { 10.96.0.20 . 80 . 0 : 10.245.1.10 . 8080"  # b's slot 0 now
    assert any(line.startswith(slots) for line in lines), lines


def test_a_rebuild_without_shared_elements_counts_none_and_later_syncs_stay_exact():
    """A rebuild whose every element comes from one service port does not count them (each
    is claimed once); later syncs still plan exactly what a rebuild of their state holds."""
    from proxy.model import ProxyModel
    from proxy.nftables.layout import FAMILIES
    from proxy.nftables.shadow import plan

    trackers = Trackers(S.NODE)
    model = ProxyModel(NodeContext(name=S.NODE, node_ips=("192.168.1.1",), cluster_cidrs=("10.128.0.0/9",)))
    S.feed(trackers, *[S.service(i) for i in range(6)], *[S.endpoint_slice(i, 3) for i in range(6)])
    first = plan(model, set(model.update(trackers, trackers.drain())), True, None, FAMILIES[4])
    first.text()
    shadow = first.state
    assert shadow is not None and shadow.base_once and not shadow.base
    S.remove(trackers, S.service(1))
    S.feed(trackers, S.endpoint_slice(2, 5), S.endpoint_slice(3, 1))
    plan(model, set(model.update(trackers, trackers.drain())), False, shadow, FAMILIES[4]).text()
    fresh = plan(model, set(), True, None, FAMILIES[4])
    fresh.text()
    assert fresh.state is not None and shadow.elements == fresh.state.elements
    assert shadow.chains == fresh.state.chains and shadow.counts == fresh.state.counts


@pytest.mark.integration
def test_a_rebuild_refused_at_its_last_line_applies_nothing(netns):
    """A rebuild is streamed to nft while the model is built and rendered; nft still commits
    it in one transaction, so a bad line after everything else leaves the previous table whole."""
    ns = netns("pnft-stream")
    px, trackers, backend = proxier(ns)
    S.feed(trackers, *[S.service(i) for i in range(300)], *[S.endpoint_slice(i, 3) for i in range(300)])
    assert px.sync().full
    before = table(ns)
    render_full = backend.render_full

    def with_a_bad_last_line(model, build):
        tx = render_full(model, build)
        assert tx is not None and tx.stream is not None  # a streamed rebuild
        tx.stream = itertools.chain(tx.stream, ["add element ip podnet no-such-set { 10.0.0.1 }\n"])
        return tx

    backend.render_full = with_a_bad_last_line
    backend.shadow = None  # the kernel's table unknown: the next sync rebuilds it
    px.force_full()
    S.feed(trackers, S.endpoint_slice(7, 4))
    with pytest.raises(ApplyError):
        px.sync()
    assert table(ns) == before
    backend.render_full = render_full
    assert px.sync().full
    assert S.endpoint_ip(7, 3) in ns.run("nft", "list", "map", "ip", "podnet", "slots-tcp").stdout


@pytest.mark.integration
def test_a_rebuild_whose_model_build_fails_half_way_applies_nothing(netns, monkeypatch):
    """The model is built as nft reads the rebuild: a Service that cannot be built half-way
    through kills nft before it commits anything, and the next sync builds the Services the
    failed one never got to (their changes are no longer in the trackers)."""
    from proxy import model as M

    ns = netns("pnft-halfway")
    px, trackers, backend = proxier(ns)
    S.feed(trackers, *[S.service(i) for i in range(300)], *[S.endpoint_slice(i, 3) for i in range(300)])
    assert px.sync().full
    before = table(ns)
    build_service = M.build_service

    def failing(svc, slices, node):
        if svc.name == "svc-00200":  # the second of the two changed
            raise RuntimeError("cannot build")
        return build_service(svc, slices, node)

    monkeypatch.setattr(M, "build_service", failing)
    backend.shadow = None
    px.force_full()
    S.feed(trackers, *[S.endpoint_slice(i, 4) for i in (7, 200)])
    with pytest.raises(RuntimeError, match="cannot build"):
        px.sync()
    assert table(ns) == before  # not even the Services before the failed one
    monkeypatch.setattr(M, "build_service", build_service)
    result = px.sync()  # nothing new in the trackers: the Services left unbuilt are built now
    assert result.full and result.applied
    slots = ns.run("nft", "list", "map", "ip", "podnet", "slots-tcp").stdout
    assert S.endpoint_ip(7, 3) in slots and S.endpoint_ip(200, 3) in slots
