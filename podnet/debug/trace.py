"""`podnet trace`: send one probe from a pod and follow it.

While the probe is in flight, capture sockets watch the source pod, every node, the underlay
and every pod; trace flags and monitors record the rules it hits in each node. Afterwards
conntrack tells which NAT it got, and, when it vanished, the routes tell whether a node had
nowhere to send it. The verdict is drawn from these observations only, in this order:
an answer at the source (delivered, refused, rejected by a rule, unreachable), a rule that
dropped it, a node with no route (for the request, then for the reply), or lost after the
last place it was seen.
"""

from __future__ import annotations

import contextlib
import re
import time
from dataclasses import asdict, dataclass, field, replace

from podnet.debug import causes, kdrop, links, nftrace, probe_packet, routes
from podnet.debug import nat as natmod
from podnet.debug.capture import Frame, Taps
from podnet.debug.summary import describe
from podnet.debug.topology import Cluster, Place, PodInfo, TargetError, split_ref

POLICY_TABLE = "podnet-policy"  # policy/nft.py's table: its drops are NetworkPolicy's

PROTOS = ("tcp", "udp", "icmp")


@dataclass(frozen=True)
class Target:
    label: str
    ip: str
    port: int | None
    service: str | None = None
    node: str | None = None  # a node's address: the probe is for a NodePort (or the node itself)


@dataclass(frozen=True)
class Hop:
    ms: float  # since the probe left
    where: str
    ifname: str
    direction: str  # in | out
    relation: str  # request | reply | error
    packet: str


@dataclass(frozen=True)
class Verdict:
    result: str  # delivered | refused | rejected | dropped | no-route | unreachable | lost
    where: str  # pod/NAME, node/NAME or underlay: the place of the cause
    detail: str
    rule: str = ""
    pod: str = ""
    cause: str = ""  # a word from podnet.debug.causes: rule-drop, rp-filter, mtu, ...
    ifname: str = ""  # the interface of the cause, when it has one
    mtu: int | None = None
    kernel: str = ""  # the kernel's own reason, when it dropped the probe


@dataclass
class TraceResult:
    source: str
    target: str
    proto: str
    probe_port: int
    tool: str
    hops: list[Hop] = field(default_factory=list)
    rules: list[nftrace.RuleHit] = field(default_factory=list)
    nat: list[natmod.Nat] = field(default_factory=list)
    routes: list[routes.RouteCheck] = field(default_factory=list)
    links: list[links.LinkProblem] = field(default_factory=list)
    kernel: list[kdrop.KernelDrop] = field(default_factory=list)
    kernel_status: str = ""  # why the kernel's reasons are missing ("" when they were watched)
    size: int | None = None
    verdict: Verdict | None = None

    def to_dict(self) -> dict:
        out = asdict(self)
        out["nat"] = [{**asdict(n), "dnat": n.dnat, "snat": n.snat} for n in self.nat]
        return out


def parse_target(cluster: Cluster, ref: str, proto: str) -> Target:
    base, sep, port_text = ref.rpartition(":")
    if not sep:
        base, port_text = ref, ""
    if port_text and not port_text.isdigit():
        raise TargetError(f"--to: {ref!r}: the port {port_text!r} is not a number")
    if port_text and proto == "icmp":
        # ICMP has no ports: a :PORT would otherwise be dropped without a word
        raise TargetError(f"--to: {ref!r}: ICMP has no ports; give {base} without :{port_text}, or --proto tcp|udp")
    port = int(port_text) if port_text else None
    if port is not None and not 1 <= port <= 65535:
        raise TargetError(f"--to: {ref!r}: port {port} is out of range 1-65535")
    if "/" in base:
        kind, name = split_ref(base, ("svc", "pod", "node"), "--to")
        if kind == "node":
            node = cluster.node(name)
            return Target(f"node/{name}:{port}" if port else f"node/{name}", node.ip, port, node=name)
        if kind == "svc":
            svc = cluster.service(name)
            port = port or svc.ports[0][0]
            return Target(f"svc/{name}:{port}", svc.cluster_ip, port, name)
        pod = cluster.pod(name)
        if not pod.ip:
            raise TargetError(f"--to: pod/{name} has no address yet")
        port = port or pod.port
        return Target(f"pod/{name}:{port}", pod.ip, port)
    import ipaddress

    try:
        ip = str(ipaddress.IPv4Address(base))
    except ValueError:
        raise TargetError(f"--to: {ref!r} is not svc/NAME[:PORT], pod/NAME[:PORT], node/NAME:PORT or IP:PORT") from None
    return Target(f"{ip}:{port}" if port else ip, ip, port)


def trace(
    cluster: Cluster,
    source: str,
    to: str,
    proto: str = "tcp",
    timeout: float = 2.0,
    tool: str | None = None,
    size: int | None = None,
    kernel: bool = True,
    flow: nftrace.Flow | None = None,
    watch: kdrop.KernelWatch | None = None,
) -> TraceResult:
    """Send one probe and draw a verdict. `watch`: a kernel watch shared with other traces
    (podnet probe), which its owner stops; otherwise, with `kernel`, this trace runs its own."""
    if proto not in PROTOS:
        raise TargetError(f"--proto: {proto!r} is not one of {', '.join(PROTOS)}")
    _, src_name = split_ref(source, ("pod",), "--from")
    src = cluster.pod(src_name)
    if not src.netns or not src.ip:
        raise TargetError(f"--from: pod/{src_name} has no namespace or address to send from")
    target = parse_target(cluster, to, proto)
    if proto != "icmp" and target.port is None:
        raise TargetError(f"--to: {to!r}: a {proto} probe needs a port (NAME:PORT)")
    flow = flow or probe_packet.new_flow(proto)
    tool = tool or nftrace.tool_for(cluster.proxy_mode)
    result = TraceResult(f"pod/{src.name}", target.label, proto, flow.port, tool, size=size)
    node_places = [Place(n.netns, None, f"node/{n.name}") for n in cluster.nodes]
    node_ns = [(p.netns, p.label) for p in node_places]
    destinations = [p for p in _destinations(cluster, target) if p is not src]
    packet = probe_packet.build(flow, src.ip, target.ip, target.port, size)
    frames: list[Frame] = []
    sent = time.time_ns()
    send_error: OSError | None = None
    with contextlib.ExitStack() as outer:
        # the probe's conntrack entries go last, also when anything below fails
        outer.callback(natmod.forget, node_ns, flow)
        if watch is None and kernel:
            # launched first: bpftrace takes seconds to attach, the rest is set up meanwhile
            watch = kdrop.KernelWatch([flow.port]).launch()
            outer.callback(watch.stop)
        elif not kernel:
            result.kernel_status = "not asked for (--no-kernel)"
        result.links, found = links.check(path_ends(cluster, src, destinations))
        watch_places = [Place(src.netns, None, f"pod/{src.name}"), *node_places]
        if cluster.underlay_netns:
            watch_places.append(Place(cluster.underlay_netns, None, "underlay"))
        # a pod's eth0 that is down or missing cannot be captured on: its link is the evidence
        watch_places += [
            Place(p.netns, "eth0", f"pod/{p.name}")
            for p in destinations
            if links.state(found.get(p.netns, {}).get("eth0")) in ("up", "no-carrier")
        ]
        expression = "icmp" if proto == "icmp" else f"({proto} port {flow.port}) or icmp"
        with nftrace.TraceSession(node_places, flow, tool) as session, Taps(watch_places, expression) as taps:
            if watch is not None:
                watch.wait()
                result.kernel_status = watch.unavailable
            session.settle()
            taps.drain()
            sent = time.time_ns()
            try:
                probe_packet.send(watch_places[0].path(), packet, target.ip)
            except OSError as e:  # the source pod's own kernel refused it: no route, too big, ...
                send_error = e
            if send_error is None:
                frames = _collect(taps, flow, src, timeout)
            if watch is not None and not watch.unavailable:
                drops = _await_drops(watch, flow, answered=any(_is_reply(f, flow, src) for f in frames))
                result.kernel = _placed(cluster, drops, found)
        result.rules = [h for h in session.hits() if _of_flow(h, flow)]
        result.nat = natmod.entries(node_ns, flow)
    result.hops = _hops(frames, flow, sent)
    result.rules = crossing_order(result.rules, result.hops, flow.port, proto)
    result.verdict = _verdict(cluster, src, target, flow, frames, result, send_error)
    return result


def _await_drops(watch: kdrop.KernelWatch, flow, answered: bool) -> list[kdrop.KernelDrop]:
    """bpftrace reads its perf buffer on its own schedule (slower on a busy machine): when
    the probe was not answered, give a drop up to a second to arrive."""
    deadline = time.monotonic() + (0.1 if answered else 1.0)
    while True:
        drops = kdrop.for_flow(watch.drops(), flow.port)
        if time.monotonic() >= deadline or (drops and not answered):
            return drops
        time.sleep(0.05)


def _is_reply(frame: Frame, flow, src: PodInfo) -> bool:
    if not _is_answer(frame, flow, src):
        return False
    ip = probe_packet.dissect(frame.data)
    return probe_packet.relation(ip, flow) == "reply"


def _of_flow(hit: nftrace.RuleHit, flow: nftrace.Flow) -> bool:
    """Monitors report every traced packet of their namespace, other traces' too (probe runs
    many at once): keep the hits whose packet is this flow's, or cannot be told."""
    if not hit.packet:
        return True
    return packet_relation(hit.packet, flow.port, flow.proto) is not None or (
        flow.proto != "icmp" and "icmp" in hit.packet.lower()
    )


def path_ends(cluster: Cluster, src: PodInfo, destinations: list[PodInfo]) -> list[links.LinkEnd]:
    """Every interface the probe may need: the pods' eth0 and host veths, and every node's
    uplink with its underlay port (a Service's endpoint may be on any node)."""
    ends = []
    for pod in [src, *destinations]:
        ends.append(links.LinkEnd(pod.netns, "eth0", f"pod/{pod.name}", "pod eth0"))
        ends.append(
            links.LinkEnd(pod.node_netns, pod.host_veth, f"node/{pod.node}", f"pod {pod.name}'s host-side veth")
        )
    for node in cluster.nodes:
        ends.append(links.LinkEnd(node.netns, node.uplink, f"node/{node.name}", "uplink"))
        if node.underlay_port and cluster.underlay_netns:
            ends.append(
                links.LinkEnd(
                    cluster.underlay_netns, node.underlay_port, "underlay", f"node {node.name}'s underlay port"
                )
            )
    return ends


def _placed(cluster: Cluster, drops: list[kdrop.KernelDrop], found: dict) -> list[kdrop.KernelDrop]:
    """Name each drop's namespace (by inode) as a pod or node, and its interface."""
    labels: dict[int, tuple[str | None, str]] = {}
    spaces = [(n.netns, f"node/{n.name}") for n in cluster.nodes] + [
        (p.netns, f"pod/{p.name}") for p in cluster.pods if p.netns
    ]
    if cluster.underlay_netns:
        spaces.append((cluster.underlay_netns, "underlay"))
    for name, label in spaces:
        with contextlib.suppress(OSError):
            labels[kdrop.netns_inode(Place(name, None, label).path())] = (name, label)
    out = []
    for d in drops:
        name, label = labels.get(d.ns_inode, (None, ""))
        ifname = (
            next((n for n, link in found.get(name, {}).items() if link.get("ifindex") == d.ifindex), "")
            if label and d.ifindex
            else ""
        )
        out.append(replace(d, where=label, ifname=ifname))
    return out


def _destinations(cluster: Cluster, target: Target) -> list[PodInfo]:
    """The pods the probe may end in: the Service's endpoints, or the pod with that address.
    Watching only these keeps a trace in a lab of hundreds of pods to a handful of sockets."""
    if target.service:
        names = set(cluster.service(target.service).endpoints)
        return [p for p in cluster.pods if p.name in names and p.netns]
    pod = cluster.pod_by_ip(target.ip)
    return [pod] if pod is not None and pod.netns else []


def _collect(taps: Taps, flow, src: PodInfo, timeout: float) -> list[Frame]:
    """Frames of the flow until an answer reaches the source (then a moment for the last
    hops to be read), or until the timeout."""
    out: list[Frame] = []
    deadline = time.monotonic() + timeout
    answered_at = None
    while time.monotonic() < deadline:
        for frame in taps.frames(0.05):
            out.append(frame)
            if answered_at is None and _is_answer(frame, flow, src):
                answered_at = time.monotonic()
                deadline = min(deadline, answered_at + 0.15)
            if time.monotonic() >= deadline:
                break
    out += taps.drain()
    return sorted(out, key=lambda f: f.ts_ns)


def _is_answer(frame: Frame, flow, src: PodInfo) -> bool:
    if frame.place.netns != src.netns or frame.outgoing:
        return False
    ip = probe_packet.dissect(frame.data)
    return ip is not None and ip.dst == src.ip and probe_packet.relation(ip, flow) in ("reply", "error")


def _hops(frames: list[Frame], flow, sent_ns: int) -> list[Hop]:
    hops = []
    for f in frames:
        ip = probe_packet.dissect(f.data)
        rel = probe_packet.relation(ip, flow) if ip is not None else None
        if rel:
            ms = round((f.ts_ns - sent_ns) / 1e6, 3)
            hops.append(Hop(ms, f.place.label, f.ifname, "out" if f.outgoing else "in", rel, describe(f.data)))
    return hops


PORTS = re.compile(r"(?:SPORT=|SPT=|sport )(\d+).*?(?:DPORT=|DPT=|dport )(\d+)")
ICMP_TYPE = re.compile(r"(?:TYPE=|icmp type )(\S+)")


def packet_relation(packet: str, port: int, proto: str) -> str | None:
    """Whether a trace event's packet ("IN=.. SRC=.. SPORT=.." from xtables-monitor, or nft's
    "ip saddr .. tcp sport ..") is the probe's request or its reply; None when it cannot tell."""
    if proto == "icmp":
        m = ICMP_TYPE.search(packet)
        kind = m.group(1) if m else ""
        return "request" if kind in ("8", "echo-request") else "reply" if kind in ("0", "echo-reply") else None
    m = PORTS.search(packet)
    if not m:
        return None
    sport, dport = int(m.group(1)), int(m.group(2))
    return "request" if sport == port else "reply" if dport == port else None


def crossing_order(hits: list[nftrace.RuleHit], hops: list[Hop], port: int, proto: str) -> list[nftrace.RuleHit]:
    """The rules in the order the packet met them, across nodes.

    Each node's monitor reports its own namespace's events in order, but no event carries a
    time, and the monitors are separate processes, so their output cannot be merged as read.
    The captured hops do carry kernel times: each run of a node's events for one direction of
    the flow (a pass through that node) is placed at the time the packet of that direction
    entered that node, the k-th pass at the k-th entry. A pass without a matching hop keeps
    its place after the previous pass of its node.
    """
    passes: list[tuple[str, str | None, list[nftrace.RuleHit]]] = []  # (where, relation, hits)
    for hit in hits:
        rel = packet_relation(hit.packet, port, proto)
        last = passes[-1] if passes else None
        if last is not None and last[0] == hit.where and (rel is None or rel == last[1] or last[1] is None):
            if last[1] is None and rel is not None:
                passes[-1] = (last[0], rel, last[2])
            passes[-1][2].append(hit)
        else:
            passes.append((hit.where, rel, [hit]))
    entries: dict[tuple[str, str], list[float]] = {}
    for h in hops:
        if h.direction == "in":
            entries.setdefault((h.where, h.relation), []).append(h.ms)
    used: dict[tuple[str, str | None], int] = {}
    previous: dict[str, float] = {}
    keyed = []
    for index, (where, rel, group) in enumerate(passes):
        k = used.get((where, rel), 0)
        used[(where, rel)] = k + 1
        times = entries.get((where, rel or ""), [])
        at = times[k] if k < len(times) else previous.get(where, float("inf"))
        previous[where] = at
        keyed.append((at, index, group))
    keyed.sort(key=lambda item: (item[0], item[1]))
    return [hit for _, _, group in keyed for hit in group]


def _verdict(
    cluster: Cluster, src: PodInfo, target: Target, flow, frames: list[Frame], r: TraceResult, send_error=None
) -> Verdict:
    v = _cause(cluster, src, target, flow, frames, r, send_error)
    if not v.kernel and v.result != "delivered":
        drop = _kernel_evidence(r.kernel, src)
        if drop is not None:
            v = replace(v, kernel=drop.describe())
    return v


def _significant(drops: list[kdrop.KernelDrop], src: PodInfo) -> list[kdrop.KernelDrop]:
    """Drops that say something: not the answers that reach the probe's raw socket (it owns
    no connection, so the source pod's kernel frees them as NO_SOCKET)."""
    return [d for d in drops if not (d.where == f"pod/{src.name}" and d.dst == src.ip)]


def _kernel_evidence(drops: list[kdrop.KernelDrop], src: PodInfo) -> kdrop.KernelDrop | None:
    sig = _significant(drops, src)
    return next((d for d in sig if causes.kernel_cause(d.reason)), sig[0] if sig else None)


def _cause(cluster: Cluster, src: PodInfo, target: Target, flow, frames: list[Frame], r: TraceResult, send_error):
    dnat = next((n for n in r.nat if n.dnat), None)
    endpoint_ip = dnat.reply_src if dnat else target.ip
    endpoint = cluster.pod_by_ip(endpoint_ip)
    via = f" (DNAT on {dnat.where} from {dnat.orig_dst}:{dnat.orig_dport} to {dnat.dnat})" if dnat else ""
    if send_error is not None:
        return _not_sent(cluster, src, target, r, send_error)
    rejects = [h for h in r.rules if h.verdict in ("DROP", "REJECT") and "reject" in h.rule.lower()]
    if rejects:  # whether or not its ICMP error made it back (REJECTs are rate-limited)
        h = rejects[0]
        if target.service and dnat is None:
            return _no_endpoints(cluster, target, f"; a rule in {h.table} {h.chain} on {h.where} rejects it", h)
        return Verdict(
            "rejected", h.where, f"rejected on {h.where} by a rule in {h.table} {h.chain}", h.rule, cause="rule-reject"
        )
    answer = next((f for f in frames if _is_answer(f, flow, src)), None)
    if answer is not None and probe_packet.dissect(answer.data).src == src.ip:
        # the source pod's own kernel gave up on it: most often its gateway never answered ARP
        own = _neighbour_at(src.netns, f"pod/{src.name}", target.ip)
        if own is not None:
            return own
    if answer is not None:
        return _from_answer(cluster, answer, flow, target, endpoint, endpoint_ip, via)
    drops = [h for h in r.rules if h.verdict == "DROP"]
    if drops:
        h = drops[0]
        if h.table == POLICY_TABLE:  # the final drop of an isolated pod names what isolated it
            why = re.search(r'comment "([^"]*)"', h.rule)
            pod = h.chain.split("/", 1)[1] if "/" in h.chain else h.chain
            return Verdict("dropped", h.where, f"dropped on {h.where} by NetworkPolicy: pod {pod} is "
                           f"{why.group(1) if why else 'isolated'}, and no policy allows this", h.rule,
                           cause="network-policy")  # fmt: skip
        what = "the policy of" if h.kind == "policy" else "a rule in"
        return Verdict(
            "dropped", h.where, f"dropped on {h.where} by {what} {h.table} {h.chain}", h.rule, cause="rule-drop"
        )
    down = _link_problem(cluster, src, r, endpoint)
    if down is not None:
        return down
    if target.service and dnat is None:  # whatever became of it next, nothing could answer it
        svc = cluster.service(target.service)
        if not svc.endpoints:
            return _no_endpoints(cluster, target, "", None)
        return _untranslated(cluster, src, target, flow)
    # the routes first: a route that sends the packet the wrong way is the cause, wherever the
    # kernel finally drops it; the kernel's reason rides along as evidence
    problem = _route_problem(cluster, src, frames, flow, r, endpoint, endpoint_ip)
    if problem is not None:
        return problem
    from_kernel = _from_kernel(cluster, src, r)
    if from_kernel is not None:
        return from_kernel
    unresolved = _neighbour_problem(cluster, src, frames, flow, endpoint_ip)
    if unresolved is not None:
        return unresolved
    if endpoint is not None and _reached(frames, flow, endpoint):
        return Verdict(
            "lost", f"pod/{endpoint.name}", f"reached pod {endpoint.name}{via} but no answer came back", cause="lost"
        )
    last = [h for h in r.hops if h.relation == "request"]
    where = f"{last[-1].where} {last[-1].ifname}" if last else f"pod/{src.name}"
    return Verdict("lost", where, f"no answer; the probe was last seen on {where}", cause="lost")


def _not_sent(cluster: Cluster, src: PodInfo, target: Target, r: TraceResult, error: OSError) -> Verdict:
    """The source pod's kernel refused the probe at sendto(): say why, from its links and routes."""
    mine = [p for p in r.links if p.where in (f"pod/{src.name}", f"node/{src.node}") and src.name in p.detail]
    mine += [p for p in r.links if p.where == f"pod/{src.name}"]
    if mine:  # its routes went with its link: the link is the cause
        p = mine[0]
        return Verdict(
            "unreachable",
            p.where,
            f"{p.detail}, so pod {src.name} cannot send ({error.strerror})",
            cause=p.cause,
            ifname=p.ifname,
        )
    cause = causes.send_error_cause(error.errno)
    where = f"pod/{src.name}"
    if cause == "mtu":
        route, _ = routes.route_get(src.netns, target.ip, None, None)
        dev = (route or {}).get("dev", "eth0")
        mtu = routes.link_mtu(src.netns, dev)
        return Verdict(
            "unreachable",
            where,
            f"pod {src.name} cannot send {r.size} bytes with DF set: its {dev} has MTU {mtu}",
            cause="mtu",
            ifname=dev,
            mtu=mtu,
        )
    if cause == "no-route":
        table = routes.table(src.netns)
        return Verdict(
            "no-route",
            where,
            f"no route in pod {src.name} to {target.ip} ({error.strerror}); its routes: {table or 'none'}",
            cause="no-route",
        )
    return Verdict("unreachable", where, f"pod {src.name} cannot send the probe: {error.strerror}", cause=cause)


def _no_endpoints(cluster: Cluster, target: Target, how: str, hit: nftrace.RuleHit | None) -> Verdict:
    assert target.service is not None  # called for Services only
    svc = cluster.service(target.service)
    node_where = hit.where if hit else ""
    if svc.not_ready:
        detail = (
            f"Service {svc.name} has no ready endpoints: the pods it selects are not ready "
            f"({', '.join(svc.not_ready)}){how}"
        )
        cause = "endpoints-not-ready"
    else:
        detail = f"Service {svc.name} has no endpoints: its selector matches no pod{how}"
        cause = "no-endpoints"
    return Verdict(
        "rejected" if hit else "no-route", node_where or target.label, detail, hit.rule if hit else "", cause=cause
    )


def _link_problem(cluster: Cluster, src: PodInfo, r: TraceResult, endpoint: PodInfo | None) -> Verdict | None:
    """A link down or missing on this probe's path (not on a node it never had to cross)."""
    ends = [src] + ([endpoint] if endpoint else [])
    nodes = {p.node for p in ends}
    relevant = {f"pod/{p.name}" for p in ends}
    crossing = endpoint is None or endpoint.node != src.node
    if crossing:
        relevant |= {f"node/{n}" for n in nodes}
    ports = {n.underlay_port for n in cluster.nodes if n.name in nodes}
    for p in r.links:
        if p.where == "underlay" and not (crossing and p.ifname in ports):
            continue
        if p.where != "underlay" and p.where not in relevant and not any(f"pod {e.name}'s" in p.detail for e in ends):
            continue
        return Verdict("unreachable", p.where, p.detail, cause=p.cause, ifname=p.ifname)
    return None


def _from_kernel(cluster: Cluster, src: PodInfo, r: TraceResult) -> Verdict | None:
    """The kernel dropped the probe and said why: turn its reason into the cause."""
    for d in _significant(r.kernel, src):
        cause = causes.kernel_cause(d.reason)
        if cause is None or cause == "port-closed":
            continue
        where = d.where or f"netns {d.ns_inode}"
        on = f" on {d.ifname}" if d.ifname else ""
        node = cluster.node_by_netns(_netns_of(cluster, d.where)) if d.where.startswith("node/") else None
        detail = f"{causes.CAUSE_WORDS.get(cause, cause)} at {where}{on}"
        mtu = None
        if cause == "no-route" and node is not None:
            check = routes.check(cluster, node, d.dst, None, None)
            r.routes.append(check)
            detail = check.problem or f"no route on {where} to {d.dst} ({check.route})"
        elif cause == "rp-filter" and node is not None:
            back, err = routes.route_get(node.netns, d.src, None, None)
            detail += (
                f": it came in on {d.ifname or '?'} from {d.src}, but the route back goes "
                f"`{routes.describe(back) if back else err}`"
            )
        elif cause == "mtu" and node is not None:
            out, _ = routes.route_get(node.netns, d.dst, None, None)
            dev = (out or {}).get("dev", "")
            mtu = routes.link_mtu(node.netns, dev) if dev else None
            detail = f"larger than the MTU of {where} {dev} ({mtu}) with DF set" + (
                f" ({r.size} bytes)" if r.size else ""
            )
            d = replace(d, ifname=dev)
        return Verdict("dropped", where, detail, cause=cause, ifname=d.ifname, mtu=mtu, kernel=d.describe())
    return None


def _netns_of(cluster: Cluster, label: str) -> str | None:
    name = label.removeprefix("node/")
    return next((n.netns for n in cluster.nodes if n.name == name), None)


def _neighbour_problem(cluster: Cluster, src: PodInfo, frames: list[Frame], flow, dst: str) -> Verdict | None:
    """The last place the request was seen in (the source pod, or a node it entered): did
    its next hop answer ARP?"""
    last: tuple[str | None, str, str] = (src.netns, f"pod/{src.name}", dst)
    for f in frames:
        node = cluster.node_by_netns(f.place.netns)
        ip = probe_packet.dissect(f.data)
        if node is not None and ip is not None and probe_packet.relation(ip, flow) == "request":
            last = (node.netns, f"node/{node.name}", ip.dst)
    return _neighbour_at(*last)


def _neighbour_at(netns: str | None, where: str, to: str) -> Verdict | None:
    route, _ = routes.route_get(netns, to, None, None)
    if route is None or not route.get("dev"):
        return None
    hop = route.get("gateway") or to
    state = causes.neighbour_unresolved(routes.neighbours(netns, hop, route["dev"]))
    if state is None:
        return None
    name = where.split("/", 1)[1]
    kind = where.split("/", 1)[0]
    return Verdict(
        "unreachable",
        where,
        f"{kind} {name} has no ARP answer for {hop} on {route['dev']} (neighbour {state})",
        cause="neighbour-unresolved",
        ifname=route["dev"],
    )


def _from_answer(cluster: Cluster, answer: Frame, flow, target: Target, endpoint, endpoint_ip: str, via: str):
    """What came back to the source says how far the probe got."""
    ip = probe_packet.dissect(answer.data)
    if probe_packet.relation(ip, flow) == "reply":
        name = f"pod {endpoint.name} ({endpoint_ip})" if endpoint else endpoint_ip
        where = f"pod/{endpoint.name}" if endpoint else endpoint_ip
        if flow.proto == "tcp" and "R" in str(ip["TCP"].flags):
            if target.node and endpoint is None:
                return _nodeport_closed(cluster, target)
            return Verdict(
                "refused",
                where,
                f"reached {name}{via}, which refused it: nothing listens on the port",
                cause="port-closed",
            )
        pod_name = endpoint.name if endpoint else ""
        return Verdict("delivered", where, f"delivered to {name}{via}; it answered", pod=pod_name, cause="delivered")
    # an ICMP error that no traced rule sent: from the pod (port closed) or from a router
    from scapy.layers.inet import ICMP

    icmp = ip[ICMP]
    cause = causes.icmp_cause(icmp.type, icmp.code)
    said = describe(answer.data).split(": ", 1)[-1]
    pod = cluster.pod_by_ip(ip.src)
    node = cluster.node_by_ip(ip.src)
    if cause == "mtu":
        where = f"pod/{pod.name}" if pod else f"node/{node.name}" if node else ip.src
        mtu = int(icmp.nexthopmtu)
        return Verdict(
            "unreachable",
            where,
            f"larger than the path's MTU: {where} can forward at most {mtu} bytes and DF is set ({said})",
            cause="mtu",
            mtu=mtu,
        )
    if cause == "port-closed" and target.node and node is not None:
        return _nodeport_closed(cluster, target)
    if pod is not None:
        return Verdict(
            "refused", f"pod/{pod.name}", f"reached pod {pod.name}{via}, which refused it ({said})", cause=cause
        )
    where = f"node/{node.name}" if node else ip.src
    return Verdict("no-route", where, f"{where} answered {said}", cause=cause)


def _nodeport_closed(cluster: Cluster, target: Target) -> Verdict:
    open_ports = [f"{s.name} {p}" for s in cluster.services for p in s.node_ports]
    return Verdict(
        "refused",
        f"node/{target.node}",
        f"NodePort {target.port} is not open on node {target.node}: no Service has it, and nothing on the "
        f"node listens there (the cluster's NodePorts: {', '.join(open_ports) or 'none'})",
        cause="nodeport-closed",
    )


def _untranslated(cluster: Cluster, src: PodInfo, target: Target, flow) -> Verdict:
    """A ClusterIP is virtual: no rule translated the probe, so nothing will ever answer it."""
    assert target.service is not None  # called for a Service target only
    svc = cluster.service(target.service)
    serves = ", ".join(f"tcp {port}" for port, _ in svc.ports)
    node = cluster.node(src.node)
    route, error = routes.route_get(node.netns, target.ip, None, None)
    went = f"node {node.name} routed it `{routes.describe(route)}`" if route else f"node {node.name}: {error}"
    return Verdict(
        "no-route",
        f"node/{node.name}",
        f"no rule on node {node.name} translated {flow.proto} {target.ip}:{target.port} "
        f"(Service {svc.name} serves {serves}); a ClusterIP is virtual, so {went} and nothing answers",
        cause="service-port-unserved",
    )


def _reached(frames: list[Frame], flow, endpoint: PodInfo | None) -> bool:
    if endpoint is None:
        return False
    for f in frames:
        if f.place.netns == endpoint.netns and not f.outgoing:
            ip = probe_packet.dissect(f.data)
            if ip is not None and probe_packet.relation(ip, flow) == "request":
                return True
    return False


def _route_problem(cluster, src, frames, flow, r, endpoint, endpoint_ip) -> Verdict | None:
    """Walk the nodes the request entered, in order, and ask each for its route onward; then
    the reply's first hop, when the request reached its pod."""
    seen: list[tuple[str, str, str]] = []  # (node, ifname, dst as it arrived)
    for f in frames:
        node = cluster.node_by_netns(f.place.netns)
        if node is None or f.outgoing or any(s[0] == node.name for s in seen):
            continue
        ip = probe_packet.dissect(f.data)
        if ip is not None and probe_packet.relation(ip, flow) == "request":
            seen.append((node.name, f.ifname, ip.dst))
    for name, ifname, dst in seen:
        local = next((n for n in r.nat if n.where == f"node/{name}" and n.dnat), None)
        check = routes.check(cluster, cluster.node(name), local.reply_src if local else dst, src.ip, ifname)
        r.routes.append(check)
        if not check.ok:
            cause = causes.route_error_cause(check.problem) if check.error else "no-route"
            return Verdict("no-route", f"node/{name}", check.problem, cause=cause, ifname=ifname)
    if endpoint is not None and _reached(frames, flow, endpoint):
        snat = next((n for n in r.nat if n.snat), None)
        back_to = snat.reply_dst if snat else src.ip
        check = routes.check(cluster, cluster.node(endpoint.node), back_to, endpoint_ip, endpoint.host_veth)
        r.routes.append(check)
        if not check.ok:
            cause = causes.route_error_cause(check.problem) if check.error else "no-route"
            return Verdict(
                "no-route", f"node/{endpoint.node}", f"the reply from pod {endpoint.name}: {check.problem}", cause=cause
            )
    return None


def render(r: TraceResult) -> list[str]:
    lines = [f"trace {r.source} -> {r.target} ({r.proto}, probe port/id {r.probe_port})", "", "hops:"]
    for h in r.hops:
        lines.append(f"  {h.ms:8.3f} ms  {h.where:<28} {h.ifname:<14} {h.direction:<3} {h.relation:<7} {h.packet}")
    if not r.hops:
        lines.append("  (the probe was not seen on any interface)")
    lines += ["", f"rules hit ({r.tool}):"]
    for hit in r.rules:
        if hit.verdict == "CONTINUE" and hit.kind == "rule":
            continue
        text = hit.rule or f"policy {hit.verdict}"
        lines.append(f"  {hit.where:<10} {hit.table:<7} {hit.chain:<28} {hit.verdict:<9} {text}")
    if not r.rules:
        lines.append("  (none recorded)")
    lines += ["", "address translation (conntrack):"]
    for n in r.nat:
        parts = [f"DNAT to {n.dnat}" if n.dnat else "no DNAT", f"SNAT to {n.snat}" if n.snat else "no SNAT"]
        dst = f"{n.orig_dst}:{n.orig_dport}" if n.orig_dport else n.orig_dst
        state = f"  [{n.state}]" if n.state else ""
        lines.append(f"  {n.where:<10} {n.orig_src} -> {dst}  {', '.join(parts)}{state}")
    if not r.nat:
        lines.append("  (no conntrack entry for the probe)")
    for c in r.routes:
        lines.append(f"route on node/{c.node} to {c.dst}: {c.route}{'' if c.ok else '  <- ' + c.problem}")
    for p in r.links:
        lines.append(f"link: {p.detail}")
    lines += ["", "kernel drops (skb:kfree_skb):"]
    for d in r.kernel:
        lines.append(
            f"  {d.where or d.ns_inode:<12} {d.ifname or '-':<14} {d.reason:<16} {d.location}  {d.src} -> {d.dst}"
        )
    if r.kernel_status:
        lines.append(f"  (not watched: {r.kernel_status})")
    elif not r.kernel:
        lines.append("  (none)")
    v = r.verdict
    assert v is not None  # trace() always draws one
    place = f"{v.where} {v.ifname}" if v.ifname and v.ifname not in v.where else v.where
    lines += ["", f"verdict: {v.result.upper()} at {place} ({v.cause}): {v.detail}"]
    if v.mtu:
        lines.append(f"  mtu: {v.mtu}")
    if v.rule:
        lines.append(f"  rule: {v.rule}")
    if v.kernel:
        lines.append(f"  kernel: {v.kernel}")
    return lines
