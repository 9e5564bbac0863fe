"""`podnet agent`: the flags (each also a key of the --config YAML file)."""

from __future__ import annotations

import logging
import signal
import sys

import click

from podnet.agent.config import BACKENDS, FLAGS, PROXY_MODES, ConfigError, build, read_file


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("podnet")
    except PackageNotFoundError:
        return "unknown"


@click.command("agent")
@click.option("--config", "config_file", type=click.Path(dir_okay=False), help="YAML file of flag values.")
@click.option("--node-name", help="This node's name (default: the host name).")
@click.option("--node-ip", multiple=True, help="This node's IP, one per family (default: the default route's).")
@click.option("--store", help="IPAM store: file:DIR or etcd://HOST:PORT/PREFIX (default: $PODNET_STORE).")
@click.option("--cluster-cidr", multiple=True, help="Pod CIDR, one per family (default 10.244.0.0/16).")
@click.option("--node-mask-size", multiple=True, type=int, help="Node subnet size per cluster CIDR (24 / 64).")
@click.option("--service-cidr", multiple=True, help="ClusterIP range(s) (default 10.96.0.0/12).")
@click.option("--backend", type=click.Choice(BACKENDS), help="Routes between nodes (default vxlan).")
@click.option("--proxy-mode", type=click.Choice(PROXY_MODES), help="Service rules (default iptables).")
@click.option("--objects", help="Cluster objects from: etcd, dir:DIR or kubernetes (default etcd).")
@click.option("--kubeconfig", help="For --objects kubernetes (default: in-cluster, else ~/.kube/config).")
@click.option("--cni-bin-dir", help="Where plugin launchers go (default /opt/cni/bin).")
@click.option("--cni-conf-dir", help="Where the conflist goes (default /etc/cni/net.d).")
@click.option("--cni-data-dir", help="Pod address allocations (default /var/lib/podnet/networks).")
@click.option("--lease-ttl", type=int, help="Subnet lease TTL in seconds (default 30).")
@click.option("--min-sync-period", help="Least time between two syncs of the Service rules (default 1s).")
@click.option("--metrics-bind-address", help="/metrics (default 127.0.0.1:10249; '' disables).")
@click.option("--healthz-bind-address", help="/healthz (default 0.0.0.0:10256; '' disables).")
@click.option("--network-policy/--no-network-policy", default=None,
              help="Enforce NetworkPolicy on this node's pods (default on).")  # fmt: skip
@click.option("-v", "--verbose", count=True, help="More logging.")
@click.version_option(_version(), "--version", prog_name="podnet agent")
def agent(config_file, verbose, **flags) -> None:
    """Run podnet on this node: subnet lease, routes, CNI server, service proxy and NetworkPolicy."""
    from podnet.agent.agent import Agent

    logging.basicConfig(level=logging.DEBUG if verbose > 1 else logging.INFO,
                        format="%(asctime)s podnet-agent %(levelname)s %(message)s", stream=sys.stderr)  # fmt: skip
    given = {name.replace("_", "-"): value for name, value in flags.items()}
    assert set(given) == set(FLAGS), "flags and config keys must be one list"
    try:
        cfg = build(given, read_file(config_file) if config_file else None)
    except ConfigError as e:
        raise click.UsageError(str(e)) from None
    a = Agent(cfg)
    signal.signal(signal.SIGTERM, lambda *_: a.stop_event.set())
    signal.signal(signal.SIGINT, lambda *_: a.stop_event.set())
    a.run()
