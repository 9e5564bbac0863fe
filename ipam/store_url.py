"""Where IPAM keeps its claims, as one URL: `file:DIR` or `etcd://HOST:PORT/PREFIX`.

The default comes from the PODNET_STORE environment variable, else a local directory.
Parsing touches nothing (a config can be checked without creating directories or
connecting); opening makes the store.
"""

from __future__ import annotations

import os

from ipam.disk import DiskStore
from ipam.errors import IPAMError
from ipam.value import Value

# Without importing typing, which costs each standalone plugin run more than it is worth:
# the store interface is only needed by the type checker (which treats this name as true).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Final

    from ipam.store import Store

ENV = "PODNET_STORE"
DEFAULT_DIR = "/var/lib/podnet/ipam"
DEFAULT_PREFIX = "/podnet"
FORMS = "file:DIR or etcd://HOST:PORT/PREFIX"
# A pattern string, compiled on first use: most nodes never parse an etcd URL. Matched with
# fullmatch: `$` would let a trailing newline into the prefix.
_ETCD = r"etcd://(?P<host>\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+):(?P<port>[0-9]{1,5})(?P<prefix>/\S*)?"


# A plain class, not a dataclass: see the note above ipam.ranges.Range.
class StoreURL(Value):
    """Where the claims are kept: a directory (file:) or an etcd endpoint."""

    __slots__ = ("url", "directory", "host", "port", "prefix")

    def __init__(self, url: str, directory: str = "", host: str = "", port: int = 0, prefix: str = "") -> None:
        self.url: Final = url
        self.directory: Final = directory  # file:
        self.host: Final = host  # etcd://
        self.port: Final = port
        self.prefix: Final = prefix

    @property
    def is_etcd(self) -> bool:
        return bool(self.host)

    def open(self) -> Store:
        if self.is_etcd:
            # Imported here: the etcd client pulls in http.client and ssl, which a pod ADD
            # on a node with a file store would pay for at every start.
            from ipam.etcd import EtcdStore
            from ipam.etcd_gateway import EtcdGateway

            return EtcdStore(EtcdGateway(self.host, self.port), self.prefix)
        return DiskStore(self.directory)


def default_url() -> str:
    return os.environ.get(ENV) or f"file:{DEFAULT_DIR}"


def parse_store_url(url: str | None = None, field: str = "store") -> StoreURL:
    """The URL's parts; an unparsable URL is refused with an error naming it."""
    url = default_url() if url is None else url
    if not isinstance(url, str):
        raise IPAMError(f"{field}: {url!r} is not a store URL ({FORMS})")
    if url.startswith("file:"):
        directory = url[len("file:") :]
        if directory.startswith("//"):  # file:///var/lib/x
            directory = directory[2:]
        if not directory.startswith("/"):
            raise IPAMError(f"{field}: {url!r}: file: needs an absolute directory (file:/var/lib/podnet/ipam)")
        from ipam.config import path_problem  # config imports this module

        problem = path_problem(directory)
        if problem:
            raise IPAMError(f"{field}: the directory {problem}")
        return StoreURL(url, directory=os.path.normpath(directory))
    import re  # here: a file: store, what most nodes have, needs no pattern

    m = re.fullmatch(_ETCD, url)
    if m is None:
        raise IPAMError(f"{field}: {url!r} is not a store URL ({FORMS})")
    port = int(m["port"])
    if not 0 < port < 65536:
        raise IPAMError(f"{field}: {url!r}: port {port} is out of range")
    prefix = (m["prefix"] or "").rstrip("/") or DEFAULT_PREFIX
    return StoreURL(url, host=m["host"].strip("[]"), port=port, prefix=prefix)


def open_store(url: str | None = None, field: str = "store") -> Store:
    """The store `url` names (default: $PODNET_STORE, else file:/var/lib/podnet/ipam)."""
    return parse_store_url(url, field).open()
