"""`podnet proxy …`: look at what the service proxy would program, or has programmed, without
running the daemon. (The daemon itself is `podnet-proxy`.)"""

from __future__ import annotations

import click

from podnet.options import SharedOption, SharedOptionsGroup
from podnet.output import emit, output_option

MODES = ("iptables", "nftables", "ipvs")
# `podnet proxy --proxy-mode nftables render …` and `podnet proxy render --proxy-mode nftables …`
PROXY_MODE = SharedOption(
    "--proxy-mode", type=click.Choice(MODES), help="iptables, nftables or ipvs (render: default iptables; show: all)."
)


@click.group("proxy", cls=SharedOptionsGroup, shared=[PROXY_MODE])
def proxy() -> None:
    """The service proxy: render rules from objects, show programmed rules."""


@proxy.command("render")
@click.option("--objects-dir", required=True, type=click.Path(exists=True, file_okay=False))
@click.option("--hostname-override", default="node", show_default=True, help="This node's name.")
@click.option("--node-ip", multiple=True, help="This node's IPs (repeatable).")
@click.option("--cluster-cidr", default="", help="Pod CIDR: traffic from elsewhere is SNATed.")
@click.option("--masquerade-all", is_flag=True)
@output_option("text", "json", "yaml")
@click.pass_context
def render_cmd(ctx, objects_dir, hostname_override, node_ip, cluster_cidr, masquerade_all, output) -> None:
    """Print the rules a full sync would apply for the objects in a directory (touches nothing)."""
    from proxy.backend import UnsupportedMode, backend_for
    from proxy.model import NodeContext, ProxyModel, node_context_with
    from proxy.source import DirectorySource
    from proxy.trackers import Trackers

    proxy_mode = PROXY_MODE.get(ctx) or "iptables"
    node = NodeContext(
        name=hostname_override,
        node_ips=tuple(node_ip),
        cluster_cidrs=tuple(c for c in cluster_cidr.split(",") if c),
        masquerade_all=masquerade_all,
    )
    try:
        backend = backend_for(proxy_mode, node)
    except UnsupportedMode as e:
        raise click.UsageError(str(e)) from None
    trackers = Trackers(node.name)
    source = DirectorySource(objects_dir)
    source.scan(trackers)
    for err in source.errors:
        click.echo(f"# skipped {err}", err=True)
    changes = trackers.drain()
    model = ProxyModel(node_context_with(node, trackers))
    changed = model.update(trackers, changes)
    # a backend that never applied anything plans a first, full sync (and reads no kernel)
    text = backend.render(model, set(changed), True).text()
    if output == "text":
        click.echo(text, nl=False)  # exactly the text the executor would load
    else:
        emit(output, {"mode": proxy_mode, "rules": text.splitlines(), "skipped": [str(e) for e in source.errors]})


@proxy.command("show")
@output_option("text", "json", "yaml")
@click.pass_context
def show_cmd(ctx, output) -> None:
    """Print podnet's chains and jump rules as programmed in this network namespace."""
    from proxy.backend import backend_for
    from proxy.model import NodeContext

    mode = PROXY_MODE.get(ctx)
    found: dict[str, dict[str, list[str]]] = {}
    for name in MODES if mode is None else (mode,):
        for family in (4, 6):  # dual stack: each family's rules of each mode, through its Backend
            shown = backend_for(name, NodeContext(name="node", family=family)).show()
            if shown:
                found.setdefault(name, {})[f"IPv{family}"] = shown.splitlines()

    def text() -> list[str]:
        lines = []
        for name, families in found.items():
            for family, rules in families.items():
                lines += [f"# {name} ({family})", *rules]
        return lines

    emit(output, found, text)
