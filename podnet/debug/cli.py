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
@click.argument("target")
@click.option("--filter", "expression", help="A tcpdump filter expression, e.g. 'tcp port 80'.")
@click.option("-w", "--write", "path", type=click.Path(dir_okay=False), help="Also write the packets to a pcap file.")
@click.option("--count", type=click.IntRange(min=1), help="Stop after this many packets.")
@click.option("--duration", type=click.FloatRange(min=0, min_open=True), help="Stop after this many seconds.")
@click.option("--netns", help="On a real node: the node's namespace name (default: this one).")
@LAB_OPTION
def capture_cmd(target, expression, path, count, duration, netns, lab_name) -> None:
    """Capture on pod/NAME's host-side veth or node/NAME's underlay interface."""
    from podnet.debug import capture, pcap, summary

    try:
        place = capture_place(target, lab_name, netns)
        writer = pcap.PcapWriter(path) if path else None
    except (TargetError, OSError) as e:
        raise click.ClickException(str(e)) from None
    where = f"{place.ifname} in {place.netns or 'this namespace'}"
    click.echo(f"capturing on {place.label} ({where}); Ctrl-C to stop", err=True)
    try:
        with interruptible():
            n = capture.capture(place, expression, count, duration, lambda f: click.echo(summary.line(f)), writer)
    except (FilterError, OSError) as e:
        raise click.ClickException(str(e)) from None
    finally:
        if writer:
            writer.close()
    click.echo(f"{n} packets captured" + (f", written to {path}" if path else ""), err=True)


@click.command("trace")
@click.option("--from", "source", required=True, help="pod/NAME the probe is sent from.")
@click.option("--to", "to", required=True, help="svc/NAME:PORT, pod/NAME:PORT or IP:PORT.")
@click.option("--proto", type=click.Choice(["tcp", "udp", "icmp"]), default="tcp", show_default=True)
@click.option("--timeout", type=click.FloatRange(0.1, 30), default=2.0, show_default=True, help="Seconds to wait.")
@click.option("-o", "--output", type=click.Choice(["text", "json"]), default="text", show_default=True)
@LAB_OPTION
def trace_cmd(source, to, proto, timeout, output, lab_name) -> None:
    """Send one probe packet from a pod and follow it hop by hop."""
    from podnet.debug import trace

    try:
        cluster = _cluster(lab_name)
        with interruptible():
            result = trace.trace(cluster, source, to, proto, timeout)
    except TargetError as e:
        raise click.ClickException(str(e)) from None
    except KeyboardInterrupt:
        click.echo("interrupted; trace flags and monitors removed", err=True)
        sys.exit(130)
    if output == "json":
        click.echo(json.dumps(result.to_dict(), indent=2))
    else:
        for line in trace.render(result):
            click.echo(line)
    sys.exit(0 if result.verdict.result == "delivered" else 1)


COMMANDS = (capture_cmd, trace_cmd)


def register(group: click.Group) -> None:
    for command in COMMANDS:
        group.add_command(command)
