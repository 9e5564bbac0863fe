"""`podnet`: the one command a person runs. Each group lives in the module of its concept."""

from __future__ import annotations

import os

import click

from cni import frontdoor, install
from podnet import logs
from podnet.debug.cli import register as register_debug
from podnet.ipam_cli import ipam
from podnet.lab.cli import lab as lab_group


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="podnet", prog_name="podnet", message="%(prog)s %(version)s")
def cli() -> None:
    """podnet: container networking you can install, learn from and debug."""


@cli.command("install-cni")
@click.option("--bin-dir", default="/opt/cni/bin", show_default=True, help="Where the runtime looks for plugins.")
@click.option(
    "--conf-dir", default="/etc/cni/net.d", show_default=True, help="Where the runtime looks for network configs."
)
@click.option("--name", default="podnet", show_default=True, help="Network name in the conflist.")
@click.option(
    "--subnet",
    "subnets",
    multiple=True,
    default=("10.244.0.0/24",),
    show_default=True,
    help="This node's pod subnet (repeat for dual stack).",
)
@click.option("--mtu", type=click.IntRange(68, 65535), default=None, help="Pod MTU (default: the node's uplink MTU).")
@click.option(
    "--ip-masq/--no-ip-masq",
    default=True,
    show_default=True,
    help="SNAT pod traffic that leaves the cluster CIDR (ipMasq).",
)
@click.option(
    "--cluster-cidr",
    "cluster_cidrs",
    multiple=True,
    default=install.DEFAULT_CLUSTER_CIDRS,
    show_default=True,
    help="Pod network of the whole cluster, reached without NAT (clusterCIDR; repeat for dual stack).",
)
@click.option(
    "--dns-nameserver",
    "nameservers",
    multiple=True,
    default=install.DEFAULT_NAMESERVERS,
    show_default=True,
    help="Cluster DNS server the runtime gives pods (dns.nameservers; repeatable).",
)
@click.option(
    "--chain",
    multiple=True,
    help="Reference plugins to chain after podnet-cni (portmap, bandwidth, tuning); linked into --bin-dir.",
)
@click.option(
    "--plugin-dir",
    "plugin_dirs",
    multiple=True,
    help=f"Where to find chained plugins (default: {', '.join(install.REFERENCE_PLUGIN_DIRS)}).",
)
@click.option("--data-dir", default=install.DEFAULT_DATA_DIR, show_default=True, help="IPAM data directory (dataDir).")
@click.option("--no-conflist", is_flag=True, help="Install the executables only.")
@click.option("--python", "python", default=None, help="Interpreter the plugins run on (default: this one; 3.11+).")
@click.option(
    "--python-launcher",
    is_flag=True,
    help="Install the Python launchers as the plugins instead of compiling the front door.",
)
@click.option(
    "--from-checkout",
    is_flag=True,
    help="Allow launchers that import podnet from a source checkout (development machines only).",
)
def install_cni(
    bin_dir: str,
    conf_dir: str,
    name: str,
    subnets: tuple[str, ...],
    mtu: int | None,
    ip_masq: bool,
    cluster_cidrs: tuple[str, ...],
    nameservers: tuple[str, ...],
    chain: tuple[str, ...],
    plugin_dirs: tuple[str, ...],
    data_dir: str,
    no_conflist: bool,
    python: str | None,
    from_checkout: bool,
    python_launcher: bool,
) -> None:
    """Install podnet-cni and podnet-ipam, and a conflist that uses them.

    On a node, run it from podnet's own environment (a normal, not editable, install):
    the launchers then name only that environment.
    """
    if ip_masq and not cluster_cidrs:
        raise click.UsageError("--ip-masq needs --cluster-cidr (what pods reach without NAT)")
    try:
        packages = install.package_root() if from_checkout else install.installed_package_root()
        if not no_conflist:  # before anything is written: a missing plugin leaves the node as it was
            for path in install.link_chained(bin_dir, chain, plugin_dirs or install.REFERENCE_PLUGIN_DIRS):
                click.echo(f"linked {path} -> {os.readlink(path)}")
    except install.InstallError as e:
        raise click.ClickException(str(e)) from None
    done = frontdoor.install_frontdoor(bin_dir, python, compile=not python_launcher, packages=packages)
    for path in done.paths:
        click.echo(f"installed {path}")
    click.echo(done.note, err=not done.compiled)
    if not no_conflist:
        opts = install.ConflistOptions(
            name=name,
            subnets=subnets,
            mtu=mtu,
            chain=chain,
            data_dir=data_dir,
            ip_masq=ip_masq,
            cluster_cidrs=cluster_cidrs,
            nameservers=nameservers,
        )
        click.echo(f"installed {install.write_conflist(conf_dir, opts)}")


@cli.command("cni-server")
@click.option(
    "--logging-format", type=click.Choice(logs.LOG_FORMATS), default="text", show_default=True, help="Log lines as."
)
@click.option("-v", "--v", "verbosity", type=click.IntRange(0, 4), default=2, show_default=True, help="Log verbosity.")
def cni_server(logging_format: str, verbosity: int) -> None:
    """Serve podnet-cni and podnet-ipam calls from a warm process, in this network namespace.

    The plugin executables hand their work to it when it runs, which spares each pod the
    interpreter's start-up; without it they do the same work themselves.
    """
    import logging

    from cni.server import CNIServer

    level = {0: logging.ERROR, 1: logging.WARNING, 2: logging.INFO}.get(verbosity, logging.DEBUG)
    logs.setup("podnet-cni-server", logging_format, level)
    server = CNIServer()
    logging.getLogger("podnet.cni").info("listening on the abstract socket @podnet-cni")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        server.close()


cli.add_command(ipam)
cli.add_command(lab_group)
register_debug(cli)
from podnet.proxy_cli import proxy  # noqa: E402 (one line per command group)

cli.add_command(proxy)
from podnet.agent.cli import agent  # noqa: E402
from podnet.cluster_cli import cluster  # noqa: E402

cli.add_command(agent)
cli.add_command(cluster)


def main() -> None:
    cli()


if __name__ == "__main__":
    main()
