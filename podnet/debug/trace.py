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

import re
import time
from dataclasses import asdict, dataclass, field

from podnet.debug import nat as natmod
from podnet.debug import nftrace, probe_packet, routes
from podnet.debug.capture import Frame, Taps
from podnet.debug.summary import describe
from podnet.debug.topology import Cluster, Place, PodInfo, TargetError, split_ref

PROTOS = ("tcp", "udp", "icmp")


@dataclass(frozen=True)
class Target:
    label: str
    ip: str
    port: int | None
    service: str | None = None


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
    result: str  # delivered | refused | rejected | dropped | no-route | lost
    where: str
    detail: str
    rule: str = ""
    pod: str = ""


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
        kind, name = split_ref(base, ("svc", "pod"), "--to")
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
        raise TargetError(f"--to: {ref!r} is not svc/NAME[:PORT], pod/NAME[:PORT] or IP:PORT") from None
    return Target(f"{ip}:{port}" if port else ip, ip, port)


def trace(cluster: Cluster, source: str, to: str, proto: str = "tcp", timeout: float = 2.0, tool: str | None = None):
    if proto not in PROTOS:
        raise TargetError(f"--proto: {proto!r} is not one of {', '.join(PROTOS)}")
    _, src_name = split_ref(source, ("pod",), "--from")
    src = cluster.pod(src_name)
    if not src.netns or not src.ip:
        raise TargetError(f"--from: pod/{src_name} has no namespace or address to send from")
    target = parse_target(cluster, to, proto)
    if proto != "icmp" and target.port is None:
        raise TargetError(f"--to: {to!r}: a {proto} probe needs a port (NAME:PORT)")
    flow = probe_packet.new_flow(proto)
    tool = tool or nftrace.tool_for(cluster.proxy_mode)
    result = TraceResult(f"pod/{src.name}", target.label, proto, flow.port, tool)
    node_places = [Place(n.netns, None, f"node/{n.name}") for n in cluster.nodes]
    node_ns = [(p.netns, p.label) for p in node_places]
    watch = [Place(src.netns, None, f"pod/{src.name}"), *node_places]
    if cluster.underlay_netns:
        watch.append(Place(cluster.underlay_netns, None, "underlay"))
    watch += [Place(p.netns, "eth0", f"pod/{p.name}") for p in _destinations(cluster, target) if p is not src]
    expression = "icmp" if proto == "icmp" else f"({proto} port {flow.port}) or icmp"
    packet = probe_packet.build(flow, src.ip, target.ip, target.port)
    frames: list[Frame] = []
    try:
        with nftrace.TraceSession(node_places, flow, tool) as session, Taps(watch, expression) as taps:
            session.settle()
            taps.drain()
            sent = time.time_ns()
            probe_packet.send(watch[0].path(), packet, target.ip)
            frames = _collect(taps, flow, src, timeout)
        result.rules = session.hits()
        result.nat = natmod.entries(node_ns, flow)
    finally:
        natmod.forget(node_ns, flow)
    result.hops = _hops(frames, flow, sent)
    result.rules = crossing_order(result.rules, result.hops, flow.port, proto)
    result.verdict = _verdict(cluster, src, target, flow, frames, result)
    return result


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


def _verdict(cluster: Cluster, src: PodInfo, target: Target, flow, frames: list[Frame], r: TraceResult) -> Verdict:
    dnat = next((n for n in r.nat if n.dnat), None)
    endpoint_ip = dnat.reply_src if dnat else target.ip
    endpoint = cluster.pod_by_ip(endpoint_ip)
    via = f" (DNAT on {dnat.where} from {dnat.orig_dst}:{dnat.orig_dport} to {dnat.dnat})" if dnat else ""
    rejects = [h for h in r.rules if h.verdict in ("DROP", "REJECT") and "reject" in h.rule.lower()]
    if rejects:  # whether or not its ICMP error made it back (REJECTs are rate-limited)
        h = rejects[0]
        return Verdict("rejected", h.where, f"rejected on {h.where} by a rule in {h.table} {h.chain}", h.rule)
    answer = next((f for f in frames if _is_answer(f, flow, src)), None)
    if answer is not None:
        return _from_answer(cluster, answer, flow, endpoint, endpoint_ip, via)
    drops = [h for h in r.rules if h.verdict == "DROP"]
    if drops:
        h = drops[0]
        what = "the policy of" if h.kind == "policy" else "a rule in"
        return Verdict("dropped", h.where, f"dropped on {h.where} by {what} {h.table} {h.chain}", h.rule)
    if target.service and dnat is None:
        return _untranslated(cluster, src, target, flow)
    problem = _route_problem(cluster, src, frames, flow, r, endpoint, endpoint_ip)
    if problem is not None:
        return problem
    if endpoint is not None and _reached(frames, flow, endpoint):
        return Verdict("lost", f"pod/{endpoint.name}", f"reached pod {endpoint.name}{via} but no answer came back")
    last = [h for h in r.hops if h.relation == "request"]
    where = f"{last[-1].where} {last[-1].ifname}" if last else f"pod/{src.name}"
    return Verdict("lost", where, f"no answer; the probe was last seen on {where}")


def _from_answer(cluster: Cluster, answer: Frame, flow, endpoint: PodInfo | None, endpoint_ip: str, via: str):
    """What came back to the source says how far the probe got."""
    ip = probe_packet.dissect(answer.data)
    if probe_packet.relation(ip, flow) == "reply":
        name = f"pod {endpoint.name} ({endpoint_ip})" if endpoint else endpoint_ip
        where = f"pod/{endpoint.name}" if endpoint else endpoint_ip
        if flow.proto == "tcp" and "R" in str(ip["TCP"].flags):
            return Verdict("refused", where, f"reached {name}{via}, which refused it: nothing listens on the port")
        pod_name = endpoint.name if endpoint else ""
        return Verdict("delivered", where, f"delivered to {name}{via}; it answered", pod=pod_name)
    # an ICMP error that no traced rule sent: from the pod (port closed) or from a router
    pod = cluster.pod_by_ip(ip.src)
    if pod is not None:
        return Verdict("refused", f"pod/{pod.name}", f"reached pod {pod.name}{via}, which refused it")
    node = cluster.node_by_ip(ip.src)
    where = f"node/{node.name}" if node else ip.src
    return Verdict("no-route", where, f"{where} answered {describe(answer.data).split(': ', 1)[1]}")


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
            return Verdict("no-route", f"node/{name}", check.problem)
    if endpoint is not None and _reached(frames, flow, endpoint):
        snat = next((n for n in r.nat if n.snat), None)
        back_to = snat.reply_dst if snat else src.ip
        check = routes.check(cluster, cluster.node(endpoint.node), back_to, endpoint_ip, endpoint.host_veth)
        r.routes.append(check)
        if not check.ok:
            return Verdict("no-route", f"node/{endpoint.node}", f"the reply from pod {endpoint.name}: {check.problem}")
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
    v = r.verdict
    assert v is not None  # trace() always draws one
    lines += ["", f"verdict: {v.result.upper()} at {v.where}: {v.detail}"]
    if v.rule:
        lines.append(f"  rule: {v.rule}")
    return lines
