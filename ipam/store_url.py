"""Where IPAM keeps its claims, as one URL: `file:DIR` or `etcd://HOST:PORT/PREFIX`.

The default comes from the PODNET_STORE environment variable, else a local directory.
"""

from __future__ import annotations

import os
import re

from ipam.disk import DiskStore
from ipam.errors import IPAMError
from ipam.etcd import EtcdStore
from ipam.etcd_gateway import EtcdGateway
from ipam.store import Store

ENV = "PODNET_STORE"
DEFAULT_DIR = "/var/lib/podnet/ipam"
DEFAULT_PREFIX = "/podnet"
_ETCD = re.compile(r"^etcd://(?P<host>\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+):(?P<port>[0-9]{1,5})(?P<prefix>/[^\s]*)?$")


def default_url() -> str:
    return os.environ.get(ENV) or f"file:{DEFAULT_DIR}"


def open_store(url: str | None = None, field: str = "store") -> Store:
    """The store a URL names; an unparsable URL is refused with an error naming it."""
    url = default_url() if url is None else url
    if not isinstance(url, str):
        raise IPAMError(f"{field}: {url!r} is not a store URL (file:DIR or etcd://HOST:PORT/PREFIX)")
    if url.startswith("file:"):
        directory = url[len("file:") :]
        if directory.startswith("//"):  # file:///var/lib/x
            directory = directory[2:]
        if not directory.startswith("/"):
            raise IPAMError(f"{field}: {url!r}: file: needs an absolute directory (file:/var/lib/podnet/ipam)")
        return DiskStore(directory)
    m = _ETCD.match(url)
    if m is None:
        raise IPAMError(f"{field}: {url!r} is not a store URL (file:DIR or etcd://HOST:PORT/PREFIX)")
    port = int(m["port"])
    if not 0 < port < 65536:
        raise IPAMError(f"{field}: {url!r}: port {port} is out of range")
    prefix = (m["prefix"] or "").rstrip("/") or DEFAULT_PREFIX
    return EtcdStore(EtcdGateway(m["host"].strip("[]"), port), prefix)
