"""`podnet probe`: every chosen pod connects to every chosen pod and Service, all at once.

For each source pod the connecting sockets are opened inside its namespace (a socket stays
in the namespace it was born in), then every connection of every source is waited for in
one poll, so a whole matrix costs about one timeout, not one per pair.

What is expected to connect: a Running pod on its workload port, and a Service that has
ready endpoints. A Service without endpoints is expected to refuse; that is not a failure.

The expectation comes from the lab's status, and each node's proxy programs an endpoint a
moment after the status shows it ready (the status says `available` once every node's agent
reports the etcd revision that published it as programmed). A probe in that moment
(right after `lab scale`, say) meets rules that do not have the endpoint yet, on some nodes
and not others, and a Service looks unreachable from some pods. So the answer says which
endpoints each Service had when the probe began and when it ended, which of them every node
had programmed, and calls a failure that may be such a moment a transient.
"""

from __future__ import annotations

import errno
import os
import select
import socket
import time
from dataclasses import dataclass, field, replace

import netns
from podnet.debug.topology import Cluster, EndpointInfo, PodInfo, TargetError, split_ref
from podnet.progress import Meter, Silent


@dataclass(frozen=True)
class Target:
    label: str
    ip: str
    port: int
    expected: bool
    endpoints: tuple[EndpointInfo, ...] = ()  # a Service's, as the probe found them


@dataclass(frozen=True)
class Cell:
    source: str
    target: str
    expected: bool
    ok: bool
    outcome: str  # ok | refused | timeout | unreachable | ...
    cause: str = ""  # for a red cell: the cause `podnet trace` names (see trace_failures)
    where: str = ""  # and its place
    detail: str = ""

    @property
    def failed(self) -> bool:
        return self.expected and not self.ok


@dataclass
class Matrix:
    sources: list[str]
    targets: list[str]
    cells: dict[tuple[str, str], Cell] = field(default_factory=dict)
    # per Service target: its endpoints when the probe began and when it ended
    endpoints: dict[str, dict[str, list[dict]]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)  # why a Service failed, for a person

    def failures(self) -> list[Cell]:
        return [c for c in self.cells.values() if c.failed]

    def to_dict(self) -> dict:
        return {
            "sources": self.sources,
            "targets": self.targets,
            "cells": [vars(c) | {"failed": c.failed} for c in self.cells.values()],
            "endpoints": self.endpoints,
            "notes": self.notes,
        }


def pick_sources(cluster: Cluster, refs: tuple[str, ...]) -> list[PodInfo]:
    if not refs:
        return [p for p in cluster.pods if p.running and p.netns and p.ip]
    out = []
    for ref in refs:
        _, name = split_ref(ref, ("pod",), "--from")
        pod = cluster.pod(name)
        if not pod.netns or not pod.ip:
            raise TargetError(f"--from: pod/{name} has no namespace or address yet")
        out.append(pod)
    return out


def pick_targets(cluster: Cluster, refs: tuple[str, ...]) -> list[Target]:
    pods = [p for p in cluster.pods if p.ip and p.port]
    if not refs:
        chosen = [("pod", p.name) for p in pods] + [("svc", s.name) for s in cluster.services]
    else:
        chosen = [split_ref(r, ("pod", "svc"), "--to") for r in refs]
    out = []
    for kind, name in chosen:
        if kind == "pod":
            p = cluster.pod(name)
            if not p.ip or not p.port:
                raise TargetError(f"--to: pod/{name} has no address or known port yet")
            out.append(Target(f"pod/{name}", p.ip, p.port, p.running))
        else:
            s = cluster.service(name)
            out.append(Target(f"svc/{name}", s.cluster_ip, s.ports[0][0], bool(s.endpoints), s.seen))
    return out


def socket_in(name: str) -> socket.socket:
    """A TCP socket born in the namespace (a name under /run/netns): its connections leave from there."""
    return netns.socket(name, socket.AF_INET, socket.SOCK_STREAM)


def _connect_from(netns: str, target: Target) -> socket.socket:
    sock = socket_in(netns)
    sock.setblocking(False)
    sock.connect_ex((target.ip, target.port))
    return sock


OUTCOMES = {
    0: "ok",
    errno.ECONNREFUSED: "refused",
    errno.EHOSTUNREACH: "unreachable",
    errno.ENETUNREACH: "unreachable",
    errno.ETIMEDOUT: "timeout",
}


def probe(
    cluster: Cluster, sources: list[PodInfo], targets: list[Target], timeout: float = 1.0, meter: Meter | None = None
) -> Matrix:
    matrix = Matrix([f"pod/{s.name}" for s in sources], [t.label for t in targets])
    meter = meter or Silent()
    total = len(sources) * len(targets)
    pending: dict[int, tuple[socket.socket, str, Target]] = {}
    poller = select.poll()
    try:
        for src in sources:
            for t in targets:
                assert src.netns is not None  # pick_sources() takes only pods with a namespace
                sock = _connect_from(src.netns, t)
                pending[sock.fileno()] = (sock, f"pod/{src.name}", t)
                poller.register(sock, select.POLLOUT)
            meter.update(0, total, f"{len(pending)} connecting")
        deadline = time.monotonic() + timeout
        while pending and (left := deadline - time.monotonic()) > 0:
            meter.update(len(matrix.cells), total, "answered")
            for fd, _ev in poller.poll(left * 1000):
                sock, source, t = pending.pop(fd)
                poller.unregister(fd)
                err = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                outcome = OUTCOMES.get(err, os.strerror(err))
                matrix.cells[(source, t.label)] = Cell(source, t.label, t.expected, err == 0, outcome)
                sock.close()
        for _sock, source, t in pending.values():
            matrix.cells[(source, t.label)] = Cell(source, t.label, t.expected, False, "timeout")
        meter.update(total, total, "done")
    finally:
        meter.close()
        for sock, _, _ in pending.values():
            sock.close()
    return matrix


def trace_failures(
    cluster: Cluster, matrix: Matrix, timeout: float = 1.0, kernel: bool = True, workers: int = 4
) -> None:
    """Trace every red cell, all at once, and mark it with the trace's cause and place.

    The traces share one kernel watch (one bpftrace matching every probe's port): attaching
    costs seconds, once. A trace that fails itself marks its cell with why, never the matrix."""
    from concurrent.futures import ThreadPoolExecutor

    from podnet.debug import kdrop, probe_packet, trace

    failed = matrix.failures()
    if not failed:
        return
    flows = {(c.source, c.target): probe_packet.new_flow("tcp") for c in failed}
    watch = kdrop.KernelWatch([f.port for f in flows.values()]).launch() if kernel else None
    try:
        if watch is not None:
            watch.wait()

        def one(cell: Cell):
            return trace.trace(
                cluster,
                cell.source,
                cell.target,
                "tcp",
                timeout,
                flow=flows[(cell.source, cell.target)],
                watch=watch,
                kernel=kernel,
            )

        with ThreadPoolExecutor(max_workers=workers) as pool:
            futures = [(cell, pool.submit(one, cell)) for cell in failed]
            for cell, future in futures:
                try:
                    v = future.result().verdict
                    marked = replace(cell, cause=v.cause or v.result, where=v.where, detail=v.detail)
                except Exception as e:  # one trace's trouble must not hide the other cells' causes
                    marked = replace(cell, cause="trace-failed", detail=str(e))
                matrix.cells[(cell.source, cell.target)] = marked
    finally:
        if watch is not None:
            watch.stop()


def _endpoint(e: EndpointInfo) -> dict:
    state = "terminating" if e.terminating else "available" if e.available else "ready" if e.ready else "not ready"
    return {"pod": e.pod, "ip": e.ip, "node": e.node, "state": state}


def _spelled(eps: list[dict]) -> str:
    return ", ".join(f"{e['pod']} {e['ip']} on {e['node']} ({e['state']})" for e in eps) or "none"


def explain(matrix: Matrix, targets: list[Target], after: Cluster | None) -> None:
    """Record each Service's endpoints as the probe found them and as they were when it ended
    (`after`, the lab read again), and say of each failed Service whether it may be a
    transient: an endpoint changed meanwhile, or was ready but not yet in every node's rules."""
    later = {f"svc/{s.name}": s.seen for s in after.services} if after else {}
    failed = {c.target for c in matrix.failures()}
    for t in targets:
        if not t.label.startswith("svc/"):
            continue
        before = [_endpoint(e) for e in t.endpoints]
        now = [_endpoint(e) for e in (later.get(t.label, ()) if after else t.endpoints)]  # gone: none
        matrix.endpoints[t.label] = {"before": before, "after": now}
        if t.label not in failed:
            continue
        sources = sum(1 for c in matrix.failures() if c.target == t.label)
        head = f"{t.label} failed from {sources} of {len(matrix.sources)} pods; endpoints seen: {_spelled(before)}"
        if before != now:
            matrix.notes.append(f"{head}; by the end of the probe: {_spelled(now)}. A transient: probe again.")
        elif any(e.ready and not e.available for e in t.endpoints):
            matrix.notes.append(
                f"{head}. Ready, but not yet in every node's rules: a transient (the proxies program a new "
                "endpoint within about 1.5 s); probe again."
            )
        else:
            matrix.notes.append(f"{head}. Every endpoint was programmed on every node: not a transient.")


def mark(cell: Cell) -> str:
    if cell.ok:
        return "ok"
    if cell.cause:
        return f"FAIL {cell.cause}@{cell.where}"
    return f"FAIL {cell.outcome}" if cell.expected else f"({cell.outcome})"


def table(m: Matrix) -> list[list[str]]:
    rows = [["FROM \\ TO", *m.targets]]
    for s in m.sources:
        rows.append([s, *(mark(m.cells[(s, t)]) for t in m.targets)])
    return rows
