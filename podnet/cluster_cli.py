"""`podnet cluster apply|get|delete`: Kubernetes objects in the cluster's etcd store, as
calicoctl keeps Calico's datastore. apply checks every object first and then writes them
all in one transaction: a bad object is refused with its field named, and nothing is written."""

from __future__ import annotations

import sys

import click
import yaml

from cluster import registry
from cluster.etcd import EtcdClient, EtcdError
from cluster.source import KINDS, ObjectRef
from ipam.errors import IPAMError
from ipam.store_url import parse_store_url
from podnet.output import columns, emit, output_option

STORE_HELP = "etcd://HOST:PORT/PREFIX (default: $PODNET_STORE)."


def _client(store: str | None) -> tuple[EtcdClient, str]:
    try:
        url = parse_store_url(store, "--store")
    except IPAMError as e:
        raise click.UsageError(str(e)) from None
    if not url.is_etcd:
        raise click.UsageError(f"--store: cluster objects live in etcd; {url.url!r} is not etcd://HOST:PORT/PREFIX")
    return EtcdClient(url.host, url.port), url.prefix


def _validate(obj: dict, where: str) -> None:
    """The proxy's parsers hold Kubernetes' rules and defaults for the kinds it reads."""
    from proxy.objects import PARSERS

    parser = PARSERS.get((str(obj.get("apiVersion")), str(obj.get("kind"))))
    if parser is not None:
        parser(obj, where)
    if obj.get("kind") == "NetworkPolicy":
        from policy.spec import validate

        validate(obj, where)


def _documents(path: str) -> list[tuple[dict, str]]:
    text = sys.stdin.read() if path == "-" else open(path, encoding="utf-8").read()  # noqa: SIM115
    out = []
    try:
        docs = [d for d in yaml.safe_load_all(text) if d is not None]
    except yaml.YAMLError as e:
        raise click.ClickException(f"{path}: not YAML or JSON: {e}") from None
    for n, doc in enumerate(docs):
        where = f"{path}[{n}]" if len(docs) > 1 else path
        if isinstance(doc, dict) and str(doc.get("kind", "")).endswith("List") and "items" in doc:
            out += [(item, f"{where}: items[{i}]") for i, item in enumerate(doc.get("items") or [])]
        else:
            out.append((doc, where))
    return out


def _target(what: str, namespace: str) -> tuple[str, str | None]:
    kind_text, _, name = what.partition("/")
    try:
        return registry.kind_named(kind_text), (name or None)
    except registry.InvalidObject as e:
        raise click.UsageError(str(e)) from None


@click.group("cluster")
def cluster() -> None:
    """Kubernetes objects (Service, EndpointSlice, Node, ServiceCIDR) in the cluster's etcd."""


@cluster.command("apply")
@click.option("-f", "--filename", "path", required=True, help="YAML or JSON file ('-' for stdin).")
@click.option("--store", help=STORE_HELP)
def apply(path: str, store: str | None) -> None:
    """Create or replace every object in FILE, all or none."""
    client, prefix = _client(store)
    try:
        objects = registry.check(_documents(path), _validate)
    except registry.InvalidObject as e:
        raise click.ClickException(f"refused, nothing written: {e}") from None
    try:
        registry.apply(client, prefix, objects)
    except EtcdError as e:
        raise click.ClickException(str(e)) from None
    for ref, _ in objects:
        click.echo(f"{ref.kind.lower()}/{ref.name} configured")


@cluster.command("get")
@click.argument("what")
@click.option("-n", "--namespace", default=None, help="Only this namespace (default: all).")
@output_option("text", "name", "json", "yaml")
@click.option("--store", help=STORE_HELP)
def get(what: str, namespace: str | None, output: str, store: str | None) -> None:
    """Print objects: KIND or KIND/NAME."""
    client, prefix = _client(store)
    kind, name = _target(what, namespace or "")
    try:
        found = registry.get(client, prefix, kind, namespace, name)
    except EtcdError as e:
        raise click.ClickException(str(e)) from None
    if name and not found:
        raise click.ClickException(f'{kind.lower()} "{name}" not found')
    objs = [obj for _, obj in found]
    data = objs[0] if name else {"apiVersion": "v1", "kind": "List", "items": objs}
    names = [f"{ref.kind.lower()}/{ref.name}" for ref, _ in found]
    rows = [(ref.namespace or "-", ref.name, ref.kind) for ref, _ in found]
    emit(output, data, columns(("NAMESPACE", "NAME", "KIND"), rows) if rows else [], names=names)


@cluster.command("delete")
@click.argument("what", required=False)
@click.option("-f", "--filename", "path", help="Delete the objects this file names.")
@click.option("-n", "--namespace", default="default", show_default=True)
@click.option("--store", help=STORE_HELP)
def delete(what: str | None, path: str | None, namespace: str, store: str | None) -> None:
    """Delete KIND/NAME (or every object named in -f FILE)."""
    client, prefix = _client(store)
    refs: list[ObjectRef] = []
    if path:
        try:
            refs = [ref for ref, _ in registry.check(_documents(path), None)]
        except registry.InvalidObject as e:
            raise click.ClickException(str(e)) from None
    elif what:
        kind, name = _target(what, namespace)
        if not name:
            raise click.UsageError("give KIND/NAME (or -f FILE)")
        refs = [ObjectRef(kind, namespace if KINDS[kind].namespaced else "", name)]
    else:
        raise click.UsageError("give KIND/NAME or -f FILE")
    missing = 0
    for ref in refs:
        try:
            gone = registry.delete(client, prefix, ref)
        except EtcdError as e:
            raise click.ClickException(str(e)) from None
        if gone:
            click.echo(f"{ref.kind.lower()}/{ref.name} deleted")
        else:
            missing += 1
            click.echo(f'{ref.kind.lower()} "{ref.name}" not found', err=True)
    if missing:
        sys.exit(1)
