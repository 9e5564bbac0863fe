"""`podnet capture`, `podnet trace`, `podnet probe`: the debugging commands."""

from __future__ import annotations

import contextlib
import json
import signal
import sys

import click

from podnet.debug import topology
from podnet.debug.bpf import FilterError
from podnet.debug.topology import Place, TargetError
from podnet.lab.complete import refs
from podnet.output import emit, output_option

LAB_OPTION = click.option("--lab", "lab_name", envvar="PODNET_LAB", help="Which lab (default: the one that is up).")


def _interrupt(*_) -> None:
    raise KeyboardInterrupt


@contextlib.contextmanager
def interruptible():
    """SIGTERM ends a command the way Ctrl-C does, so every clean-up block still runs."""
    old = signal.signal(signal.SIGTERM, _interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)


def _cluster(lab_name: str | None) -> topology.Cluster:
    lab = topology.present_lab(lab_name)
    if lab is None:
        raise TargetError("no lab is up: trace and probe need a lab (capture also works on a real node)")
    return topology.lab_cluster(lab)


def capture_place(ref: str, lab_name: str | None, netns: str | None) -> Place:
    kind, name = topology.split_ref(ref, ("pod", "node"), "TARGET")
    lab = None if netns else topology.present_lab(lab_name)
    if lab is not None:
        cluster = topology.lab_cluster(lab)
        if kind == "pod":
            pod = cluster.pod(name)
            return Place(pod.node_netns, pod.host_veth, f"pod/{name}")
        node = cluster.node(name)
        return Place(node.netns, node.uplink, f"node/{name}")
    if kind == "pod":  # a real node: the pods are the CNI attachments podnet made here
        return topology.node_pod_place(name, netns)
    return Place(netns, topology.default_uplink(netns), f"node/{name}")


@click.command("capture")
@click.argument("targets", nargs=-1, required=True, shell_complete=refs("pod", "node"))
@click.option("--filter", "expression", help="A tcpdump filter expression, e.g. 'tcp port 80'.")
@click.option(
    "-w",
    "--write",
    "path",
    type=click.Path(dir_okay=False),
    help="Also write the packets to a pcap file (runs until Ctrl-C unless --count or --duration).",
)
@click.option("--count", type=click.IntRange(min=1), help="Stop after this many packets.")
@click.option("--duration", type=click.FloatRange(min=0, min_open=True), help="Stop after this many seconds.")
@click.option("--netns", help="On a real node: the node's namespace name (default: this one).")
@output_option("text", "json")
@LAB_OPTION
def capture_cmd(targets, expression, path, count, duration, netns, lab_name, output) -> None:
    """Capture on pod/NAME's host-side veth or node/NAME's underlay interface.

    Several TARGETs are captured at once into one stream (and one pcap file). Without
    --count or --duration it runs until Ctrl-C (or SIGTERM), also with -w: the pcap file
    is complete when it stops. -o json prints one JSON object per packet (JSON lines)."""
    from podnet.debug import capture, pcap, summary

    try:
        places = [capture_place(t, lab_name, netns) for t in targets]
        writer = pcap.PcapWriter(path) if path else None
    except (TargetError, OSError) as e:
        raise click.ClickException(str(e)) from None
    for place in places:
        click.echo(f"capturing on {place.label} ({place.ifname} in {place.netns or 'this namespace'})", err=True)
    many = len(places) > 1

    def show(frame) -> None:
        if output == "json":  # one object per line, so a stream can be read as it comes
            click.echo(json.dumps(summary.record(frame)))
        else:
            click.echo(summary.line(frame, with_place=many))

    try:
        with interruptible():
            n = capture.capture(places, expression, count, duration, show, writer)
    except (FilterError, OSError) as e:
        raise click.ClickException(str(e)) from None
    finally:
        if writer:
            writer.close()
    click.echo(f"{n} packets captured" + (f", written to {path}" if path else ""), err=True)


@click.command("trace")
@click.option("--from", "source", required=True, shell_complete=refs("pod"), help="pod/NAME the probe is sent from.")
@click.option(
    "--to",
    "to",
    required=True,
    shell_complete=refs("svc", "pod", ports=True),
    help="svc/NAME:PORT, pod/NAME:PORT, node/NAME:NODEPORT or IP:PORT.",
)
@click.option("--proto", type=click.Choice(["tcp", "udp", "icmp"]), default="tcp", show_default=True)
@click.option("--timeout", type=click.FloatRange(0.1, 30), default=2.0, show_default=True, help="Seconds to wait.")
@click.option(
    "--size",
    type=click.IntRange(28, 65535),
    help="Bytes of IP packet (padded; DF is always set), to find where the path's MTU is too small.",
)
@click.option(
    "--kernel/--no-kernel",
    default=True,
    show_default=True,
    help="Watch the kernel's drop reasons (skb:kfree_skb, through bpftrace); costs a few seconds to attach.",
)
@output_option("text", "json", "yaml")
@LAB_OPTION
def trace_cmd(source, to, proto, timeout, size, kernel, output, lab_name) -> None:
    """Send one probe packet from a pod and follow it hop by hop.

    Exits 0 when the probe was answered, 1 with a verdict naming the place (pod, node,
    interface) and the cause otherwise."""
    from podnet.debug import trace

    try:
        cluster = _cluster(lab_name)
        with interruptible():
            result = trace.trace(cluster, source, to, proto, timeout, size=size, kernel=kernel)
    except TargetError as e:
        raise click.ClickException(str(e)) from None
    except KeyboardInterrupt:
        click.echo("interrupted; trace flags and monitors removed", err=True)
        sys.exit(130)
    emit(output, result.to_dict(), lambda: trace.render(result))
    sys.exit(0 if result.verdict is not None and result.verdict.result == "delivered" else 1)


COMMANDS: tuple[click.Command, ...] = (capture_cmd, trace_cmd)


def register(group: click.Group) -> None:
    for command in COMMANDS:
        group.add_command(command)


@click.command("probe")
@click.option(
    "--from",
    "sources",
    multiple=True,
    shell_complete=refs("pod"),
    help="pod/NAME to connect from (repeatable; default: every pod).",
)
@click.option(
    "--to",
    "targets",
    multiple=True,
    shell_complete=refs("pod", "svc"),
    help="pod/NAME or svc/NAME (repeatable; default: all of them).",
)
@click.option("--timeout", type=click.FloatRange(0.1, 30), default=1.0, show_default=True, help="Seconds to wait.")
@click.option("--png", "png", type=click.Path(dir_okay=False), help="Also draw the matrix into this PNG file.")
@click.option(
    "--trace/--no-trace",
    "trace_red",
    default=True,
    show_default=True,
    help="Trace every red cell (in parallel) and mark it with the cause trace names.",
)
@click.option("--kernel/--no-kernel", default=True, show_default=True, help="Let those traces watch kernel drops.")
@output_option("text", "json", "yaml")
@LAB_OPTION
def probe_cmd(sources, targets, timeout, png, trace_red, kernel, output, lab_name) -> None:
    """Connectivity matrix: every pod to every pod and Service; exit 1 if an expected one failed.

    A failed Service is explained by the endpoints it had when the probe began and ended."""
    from podnet import progress
    from podnet.debug import probe

    try:
        cluster = _cluster(lab_name)
        src, dst = probe.pick_sources(cluster, sources), probe.pick_targets(cluster, targets)
        meter = progress.meter("probe: connections") if len(src) * len(dst) > 100 else None
        matrix = probe.probe(cluster, src, dst, timeout, meter)
        probe.explain(matrix, dst, _cluster(cluster.lab) if matrix.failures() else None)
        if trace_red:
            with interruptible():
                probe.trace_failures(cluster, matrix, timeout, kernel)
    except TargetError as e:
        raise click.ClickException(str(e)) from None
    except KeyboardInterrupt:
        click.echo("interrupted; trace flags and monitors removed", err=True)
        sys.exit(130)

    def text() -> list[str]:
        rows = probe.table(matrix)
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
        lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
        return lines + [f"\n{note}" for note in matrix.notes]

    emit(output, matrix.to_dict(), text)
    if png:
        from podnet.debug import picture

        picture.draw(matrix, png)
    failed = matrix.failures()
    if failed:
        click.echo(f"{len(failed)} expected connections failed", err=True)
    sys.exit(1 if failed else 0)


COMMANDS = (*COMMANDS, probe_cmd)
