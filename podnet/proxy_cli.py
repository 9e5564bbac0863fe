"""`podnet proxy …`: look at what the service proxy would program, or has programmed, without
running the daemon. (The daemon itself is `podnet-proxy`.)"""

from __future__ import annotations

import subprocess

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
    from proxy.model import NodeContext, ProxyModel, node_context_with
    from proxy.source import DirectorySource
    from proxy.trackers import Trackers

    if proxy_mode not in ("iptables", "nftables", "ipvs"):
        raise click.UsageError(f"--proxy-mode={proxy_mode} is unknown (supported: iptables, nftables, ipvs)")
    node = NodeContext(
        name=hostname_override,
        node_ips=tuple(node_ip),
        cluster_cidrs=tuple(c for c in cluster_cidr.split(",") if c),
        masquerade_all=masquerade_all,
    )
    trackers = Trackers(node.name)
    source = DirectorySource(objects_dir)
    source.scan(trackers)
    for err in source.errors:
        click.echo(f"# skipped {err}", err=True)
    changes = trackers.drain()
    model = ProxyModel(node_context_with(node, trackers))
    changed = model.update(trackers, changes)
    click.echo(_full_sync_text(proxy_mode, model, set(changed)), nl=False)


def _full_sync_text(mode: str, model, changed) -> str:
    """What each mode's renderer plans for a first sync (none of them touches the kernel)."""
    if mode == "nftables":
        from proxy.nftables.layout import FAMILIES
        from proxy.nftables.shadow import plan

        return plan(model, changed, True, None, FAMILIES[model.node.family]).text()
    if mode == "ipvs":
        from proxy.ipvs.backend import IpvsBackend

        return IpvsBackend(model.node).render(model, changed, True).text()
    from proxy.iptables.render import RenderState, render

    return render(model, changed, True, RenderState(present={"filter": set(), "nat": set()})).text()


@proxy.command("show")
def show_cmd() -> None:
    """Print podnet's chains and jump rules as programmed in this network namespace."""
    from proxy.iptables import chains
    from proxy.iptables.executor import Executor, detect_flavor

    ex = Executor(detect_flavor())
    for table in chains.TABLES:
        try:
            text = ex.save(table)
        except (OSError, subprocess.CalledProcessError) as e:
            raise click.ClickException(f"iptables-save -t {table}: {e}") from e
        lines = [line for line in text.splitlines() if "PODNET-" in line]
        if lines:
            click.echo(f"*{table}")
            click.echo("\n".join(lines))
    from proxy.nftables.executor import our_tables

    for table in our_tables():  # the nftables mode's tables
        click.echo(subprocess.run(["nft", "list", "table", *table.split()], capture_output=True, text=True).stdout)
