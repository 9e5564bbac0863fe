"""`podnet ipam`: node subnets, ClusterIPs and the store they live in, from a shell.

The store comes from --store (file:DIR or etcd://HOST:PORT/PREFIX), else $PODNET_STORE,
else file:/var/lib/podnet/ipam. Commands that only read or release work from the ranges
the store remembers, so `release`, `list`, `show` and `gc` need no CIDR flags.
"""

from __future__ import annotations

import signal
import threading

import click

from ipam import registry
from ipam.clusterip import ClusterIPAllocator
from ipam.errors import IPAMError, StoreUnavailable
from ipam.store import Store
from ipam.store_url import open_store
from ipam.subnets import NodeSubnetAllocator
from podnet.options import SharedOption, SharedOptionsGroup
from podnet.output import columns, emit, output_option

EX_TEMPFAIL = 75  # sysexits.h: try again later (etcd unreachable)

# Accepted after any subcommand too, as kubectl's global flags are (podnet/options.py).
STORE = SharedOption("--store", "store_url", help="file:DIR or etcd://HOST:PORT/PREFIX (default $PODNET_STORE).")


class IPAMCommand(click.Command):
    """Every IPAM error becomes one line naming the problem; exit 75 means 'try again'."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except StoreUnavailable as e:
            click.echo(f"Error: {e}", err=True)
            ctx.exit(EX_TEMPFAIL)
        except IPAMError as e:
            raise click.ClickException(str(e)) from None


class IPAMGroup(SharedOptionsGroup):
    command_class = IPAMCommand
    group_class = type


@click.group("ipam", cls=IPAMGroup, shared=[STORE])
def ipam() -> None:
    """Node subnets, ClusterIPs and the store that keeps them."""


def _store(ctx: click.Context) -> Store:
    return open_store(STORE.get(ctx), "--store")


# -- node subnets ----------------------------------------------------------------------------


@ipam.group("node-subnet", cls=IPAMGroup)
def node_subnet() -> None:
    """Per-node pod subnets out of the cluster CIDR(s)."""


def _subnet_allocator(store: Store, cidrs: tuple[str, ...], masks: tuple[int, ...]) -> NodeSubnetAllocator | None:
    if cidrs:
        if not masks:  # kube-controller-manager's defaults
            masks = tuple(64 if ":" in c else 24 for c in cidrs)
        return NodeSubnetAllocator(store, list(cidrs), list(masks) if len(masks) > 1 else masks[0])
    known = [r for r in registry.registered(store) if r.kind == "node-subnets"]
    if not known:
        return None
    return NodeSubnetAllocator(store, [str(r.cidr) for r in known], [int(r.detail) for r in known])


cidr_options = [
    click.option("--cluster-cidr", "cidrs", multiple=True, help="Cluster CIDR (repeat once for dual stack)."),
    click.option(
        "--node-mask-size",
        "masks",
        type=int,
        multiple=True,
        help="Node subnet prefix length: one for all, or one per CIDR (default 24 for IPv4, 64 for IPv6).",
    ),
]


def with_cidrs(f):
    for option in reversed(cidr_options):
        f = option(f)
    return f


@node_subnet.command("acquire")
@click.argument("node")
@with_cidrs
@click.option("--ttl", type=int, default=None, help="Lease seconds: the subnet frees itself unless renewed.")
@click.option("--keep", is_flag=True, help="Stay in the foreground renewing the lease until SIGTERM/SIGINT.")
@output_option("text", "json", "yaml")
@click.pass_context
def subnet_acquire(ctx, node, cidrs, masks, ttl, keep, output) -> None:
    """Print NODE's subnet(s): the ones it holds, else free ones."""
    if not cidrs:
        raise IPAMError("cluster-cidr: missing (give --cluster-cidr, once per IP family)")
    if keep and ttl is None:
        raise IPAMError("keep: needs --ttl (a lease without a TTL needs no renewing)")
    alloc = _subnet_allocator(_store(ctx), cidrs, masks)
    assert alloc is not None  # given CIDRs, there is always an allocator
    subnets = alloc.acquire(node, ttl=ttl)
    emit(output, {"node": node, "subnets": [str(s) for s in subnets]}, [str(s) for s in subnets])
    if keep:
        _keep_alive(alloc, node, ttl)


def _keep_alive(alloc: NodeSubnetAllocator, node: str, ttl: int) -> None:
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    with alloc.keep_alive(node, ttl) as keeper:
        while not stop.wait(1.0):
            for e in keeper.errors:
                click.echo(f"renewing {node}'s lease failed: {e}", err=True)
            keeper.errors.clear()


@node_subnet.command("release")
@click.argument("node")
@output_option("text", "json", "yaml")
@click.pass_context
def subnet_release(ctx, node, output) -> None:
    """Free NODE's subnet(s), and say which they were."""
    store = _store(ctx)
    alloc = _subnet_allocator(store, (), ())
    released = sorted(alloc.release(node)) if alloc is not None else []
    text = [f"released {s} (node {node})" for s in released] or [f"node {node} held no subnet: nothing released"]
    emit(output, {"node": node, "released": released}, text)


@node_subnet.command("list")
@output_option("text", "json", "yaml", "name")
@click.pass_context
def subnet_list(ctx, output) -> None:
    """Every node and its subnet(s)."""
    alloc = _subnet_allocator(_store(ctx), (), ())
    leases = alloc.list() if alloc else {}
    emit(
        output,
        {node: [str(s) for s in subnets] for node, subnets in leases.items()},
        [f"{node}\t{' '.join(str(s) for s in subnets)}" for node, subnets in leases.items()],
        names=[f"node/{node}" for node in leases],
    )


# -- ClusterIPs ------------------------------------------------------------------------------


@ipam.group("clusterip", cls=IPAMGroup)
def clusterip() -> None:
    """Service addresses out of the service CIDR(s)."""


def _clusterip_allocator(store: Store, cidrs: tuple[str, ...]) -> ClusterIPAllocator | None:
    if cidrs:
        return ClusterIPAllocator(store, list(cidrs))
    known = [str(r.cidr) for r in registry.registered(store) if r.kind == "clusterips"]
    return ClusterIPAllocator(store, known) if known else None


service_cidr_option = click.option(
    "--service-cidr", "cidrs", multiple=True, help="Service CIDR (repeat once for dual stack)."
)


@clusterip.command("allocate")
@click.argument("ip", required=False)
@service_cidr_option
@click.option("--owner", default="", help="Who holds it (e.g. namespace/service).")
@click.option("--family", type=click.Choice(["4", "6"]), default=None, help="IP family of a dynamic address.")
@output_option("text", "json", "yaml")
@click.pass_context
def clusterip_allocate(ctx, ip, cidrs, owner, family, output) -> None:
    """Print a free ClusterIP, or take IP if it is free and in range."""
    if not cidrs:
        raise IPAMError("service-cidr: missing (give --service-cidr, once per IP family)")
    alloc = _clusterip_allocator(_store(ctx), cidrs)
    assert alloc is not None  # given CIDRs, there is always an allocator
    address = alloc.allocate(ip, owner=owner, family=int(family) if family else None)
    emit(output, {"ip": str(address), "owner": owner}, [str(address)])


@clusterip.command("release")
@click.argument("ip")
@service_cidr_option
@output_option("text", "json", "yaml")
@click.pass_context
def clusterip_release(ctx, ip, cidrs, output) -> None:
    """Free a ClusterIP, and say whose it was."""
    alloc = _clusterip_allocator(_store(ctx), cidrs)
    if alloc is None:
        raise IPAMError(f"ip: {ip} is not in any service-cidr this store knows (give --service-cidr)")
    owner = alloc.release(ip)
    if owner is None:
        text = f"{ip} was not allocated: nothing released"
    else:
        text = f"released {ip}" + (f" (held by {owner})" if owner else "")
    emit(output, {"ip": ip, "released": owner is not None, "owner": owner}, [text])


@clusterip.command("list")
@output_option("text", "json", "yaml")
@click.pass_context
def clusterip_list(ctx, output) -> None:
    """Every allocated ClusterIP and its owner."""
    alloc = _clusterip_allocator(_store(ctx), ())
    held = alloc.list() if alloc else {}
    emit(output, {str(ip): owner for ip, owner in held.items()}, [f"{ip}\t{owner}" for ip, owner in held.items()])


# -- the whole store -------------------------------------------------------------------------


def _allocators(store: Store) -> list:
    return [a for a in (_subnet_allocator(store, (), ()), _clusterip_allocator(store, ())) if a is not None]


@ipam.command("show", cls=IPAMCommand)
@output_option("text", "json", "yaml")
@click.pass_context
def show(ctx, output) -> None:
    """A table of each range: size, used, free."""
    rows = [u for a in _allocators(_store(ctx)) for u in a.usage()]
    data = [
        {"kind": u.kind, "range": str(u.cidr), "unit": u.unit, "size": u.size, "used": u.used, "free": u.free}
        for u in rows
    ]
    header = ("KIND", "RANGE", "UNIT", "SIZE", "USED", "FREE")
    rows = [[d[h.lower()] for h in header] for d in data]
    emit(output, data, lambda: columns(header, rows, right=("SIZE", "USED", "FREE")))


@ipam.command("gc", cls=IPAMCommand)
@output_option("text", "json", "yaml")
@click.pass_context
def gc(ctx, output) -> None:
    """Drop expired leases, and claims outside every range the store knows."""
    store = _store(ctx)
    removed: list[dict] = []
    for alloc in _allocators(store):
        with alloc.store.lock():
            for key in alloc.store.expire():
                removed.append({"kind": alloc.kind, "key": key, "why": "lease expired"})
            for key in sorted(alloc.store.keys()):
                if not alloc.in_range(key):
                    alloc.store.release(key)
                    removed.append({"kind": alloc.kind, "key": key, "why": "outside every range"})
    text = [f"removed {r['kind']} {r['key']}: {r['why']}" for r in removed] or ["nothing to remove"]
    emit(output, removed, text)
