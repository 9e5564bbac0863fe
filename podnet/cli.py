"""`podnet`: the one command a person runs. Each group lives in the module of its concept."""

from __future__ import annotations

import click

from cni import install
from podnet.debug.cli import register as register_debug
from podnet.ipam_cli import ipam
from podnet.lab.cli import lab as lab_group


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
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
@click.option("--mtu", type=int, default=None, help="Pod MTU (default: the node's uplink MTU).")
@click.option(
    "--chain", multiple=True, help="Reference plugins to chain after podnet-cni (portmap, bandwidth, tuning)."
)
@click.option("--data-dir", default=None, help="IPAM data directory (default /var/lib/podnet/networks).")
@click.option("--no-conflist", is_flag=True, help="Install the executables only.")
@click.option("--python", "python", default=None, help="Interpreter the plugins run on (default: this one; 3.11+).")
def install_cni(bin_dir, conf_dir, name, subnets, mtu, chain, data_dir, no_conflist, python) -> None:
    """Install podnet-cni and podnet-ipam, and a conflist that uses them."""
    for path in install.write_launchers(bin_dir, python):
        click.echo(f"installed {path}")
    if not no_conflist:
        opts = install.ConflistOptions(
            name=name, subnets=tuple(subnets), mtu=mtu, chain=tuple(chain), data_dir=data_dir
        )
        click.echo(f"installed {install.write_conflist(conf_dir, opts)}")


@cli.command("cni-server")
def cni_server() -> None:
    """Serve podnet-cni and podnet-ipam calls from a warm process, in this network namespace.

    The plugin executables hand their work to it when it runs, which spares each pod the
    interpreter's start-up; without it they do the same work themselves.
    """
    from cni.server import CNIServer

    server = CNIServer()
    click.echo("podnet cni-server: listening (abstract socket @podnet-cni)", err=True)
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
