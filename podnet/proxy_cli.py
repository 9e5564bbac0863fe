"""`podnet proxy …`: look at what the service proxy would program, or has programmed, without
running the daemon. (The daemon itself is `podnet-proxy`.)"""

from __future__ import annotations

import click


@click.group("proxy")
def proxy() -> None:
    """The service proxy: render rules from objects, show programmed rules."""


@proxy.command("render")
@click.option("--objects-dir", required=True, type=click.Path(exists=True, file_okay=False))
@click.option("--hostname-override", default="node", show_default=True, help="This node's name.")
@click.option("--node-ip", multiple=True, help="This node's IPs (repeatable).")
@click.option("--cluster-cidr", default="", help="Pod CIDR: traffic from elsewhere is SNATed.")
@click.option("--masquerade-all", is_flag=True)
@click.option("--proxy-mode", default="iptables", show_default=True)
def render_cmd(objects_dir, hostname_override, node_ip, cluster_cidr, masquerade_all, proxy_mode) -> None:
    """Print the rules a full sync would apply for the objects in a directory (touches nothing)."""
    from proxy.backend import UnsupportedMode, backend_for
    from proxy.model import NodeContext, ProxyModel, node_context_with
    from proxy.source import DirectorySource
    from proxy.trackers import Trackers

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
    click.echo(backend.render(model, set(changed), True).text(), nl=False)


@proxy.command("show")
def show_cmd() -> None:
    """Print podnet's chains and jump rules as programmed in this network namespace."""
    from proxy.backend import MODES, backend_for
    from proxy.model import NodeContext

    for mode in MODES:
        for family in (4, 6):
            text = backend_for(mode, NodeContext(name="node", family=family)).show()
            if text:
                click.echo(f"# {mode} (IPv{family})")
                click.echo(text, nl=False)
