"""`podnet proxy …`: look at what the service proxy would program, or has programmed, without
running the daemon. (The daemon itself is `podnet-proxy`.)"""

from __future__ import annotations

import subprocess

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
    trackers = Trackers(node.name)
    source = DirectorySource(objects_dir)
    source.scan(trackers)
    for err in source.errors:
        click.echo(f"# skipped {err}", err=True)
    changes = trackers.drain()
    model = ProxyModel(node_context_with(node, trackers))
    changed = model.update(trackers, changes)
    text = _full_sync_text(proxy_mode, model, set(changed))
    if output == "text":
        click.echo(text, nl=False)  # exactly the text the executor would load
    else:
        emit(output, {"mode": proxy_mode, "rules": text.splitlines(), "skipped": [str(e) for e in source.errors]})


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
@output_option("text", "json", "yaml")
@click.pass_context
def show_cmd(ctx, output) -> None:
    """Print podnet's chains and jump rules as programmed in this network namespace."""
    mode = PROXY_MODE.get(ctx)
    found: dict[str, dict[str, list[str]]] = {}
    if mode in (None, "iptables", "ipvs"):  # ipvs mode keeps companion iptables rules
        found["iptables"] = _iptables_rules()
    if mode in (None, "nftables"):
        from proxy.nftables.executor import our_tables

        found["nftables"] = {table: _nft_table(table).splitlines() for table in our_tables()}

    def text() -> list[str]:
        lines = []
        for table, rules in found.get("iptables", {}).items():
            lines += [f"*{table}", *rules]
        for rules in found.get("nftables", {}).values():
            lines += rules
        return lines

    emit(output, found, text)


def _nft_table(table: str) -> str:
    return subprocess.run(["nft", "list", "table", *table.split()], capture_output=True, text=True).stdout


def _iptables_rules() -> dict[str, list[str]]:
    """podnet's lines of each iptables table, as iptables-save prints them."""
    from proxy.iptables import chains
    from proxy.iptables.executor import Executor, detect_flavor

    ex = Executor(detect_flavor())
    out = {}
    for table in chains.TABLES:
        try:
            text = ex.save(table)
        except (OSError, subprocess.CalledProcessError) as e:
            raise click.ClickException(f"iptables-save -t {table}: {e}") from e
        lines = [line for line in text.splitlines() if "PODNET-" in line]
        if lines:
            out[table] = lines
    return out
