"""This node's pod subnet(s), leased from the cluster IPAM store, and every node's lease record.

The subnet claim is IPAM's (ipam.subnets.NodeSubnetAllocator: owner = node name, a TTL,
renewed while the agent runs, the same subnet back after a restart). Next to the claims,
under the same etcd lease, each node keeps its *node record* -- what the other nodes need
to route to it -- at

    <store prefix>/node-subnets/@node/<node>   JSON {"node", "subnets", "nodeIPs", "backend", "vtepMAC"}

IPAM only ever reads the claim keys (@k/, @o/, @last/), so the record extends the lease
compatibly: older readers see the same claims as before. Attached to the claim's own etcd
lease, a record vanishes with the subnet when its node stops renewing.

With a `file:` store the record is a file that its node rewrites on every renewal (a
counter goes up); a reader takes a record as expired once it has seen no renewal for the
record's TTL on its own monotonic clock, so a wall-clock step expires nothing that is alive.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

from cluster.etcd import EtcdClient, EtcdError
from ipam.errors import IPAMError
from ipam.etcd import CLAIMS, EtcdStore
from ipam.store import Store
from ipam.store_url import StoreURL
from ipam.subnets import CHILD, NodeSubnetAllocator

log = logging.getLogger("podnet.agent")

RECORDS = "@node/"


@dataclass(frozen=True)
class NodeRecord:
    node: str
    subnets: tuple[str, ...]
    node_ips: tuple[str, ...]
    backend: str
    vtep_mac: str = ""
    ttl: int = 0
    renewed: int = 0  # file stores: goes up on every renewal, so readers see the node alive

    def to_json(self) -> str:
        d = {"node": self.node, "subnets": list(self.subnets), "nodeIPs": list(self.node_ips),
             "backend": self.backend, "vtepMAC": self.vtep_mac, "ttl": self.ttl, "renewed": self.renewed}  # fmt: skip
        return json.dumps(d, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> NodeRecord:
        d = json.loads(text)
        if not isinstance(d, dict) or not isinstance(d.get("node"), str):
            raise ValueError("not a node record")
        return cls(
            node=d["node"],
            subnets=tuple(d.get("subnets", ())),
            node_ips=tuple(d.get("nodeIPs", ())),
            backend=d.get("backend", ""),
            vtep_mac=d.get("vtepMAC", ""),
            ttl=int(d.get("ttl", 0)),
            renewed=int(d.get("renewed", 0)),
        )

    def routing(self) -> tuple:
        """What other nodes route by (not the renewal counter)."""
        return (self.subnets, self.node_ips, self.backend, self.vtep_mac)


class RecordStore:
    """Where node records live: next to the node-subnet claims of the IPAM store."""

    def __init__(self, url: StoreURL, store: Store) -> None:
        self.url = url
        if isinstance(store, EtcdStore):
            self.client: EtcdClient | None = store.gateway
            self.prefix = f"{store.prefix}{CHILD}/{RECORDS}"
            self.claims = f"{store.prefix}{CHILD}/{CLAIMS}"
        else:
            self.client = None
            self.prefix = os.path.join(url.directory, CHILD, RECORDS.rstrip("/"))

    def write(self, record: NodeRecord) -> None:
        if self.client is not None:
            claim = self.client.get(self.claims + record.subnets[0])
            # Under the claim's own lease: the record goes when the subnet goes.
            self.client.put(self.prefix + record.node, record.to_json(), claim.lease if claim else 0)
            return
        os.makedirs(self.prefix, exist_ok=True)
        path = os.path.join(self.prefix, f"{record.node}.json")
        with open(f"{path}.tmp", "w") as f:
            f.write(record.to_json())
        os.replace(f"{path}.tmp", path)


class SubnetLease:
    """Acquire, renew and publish this node's subnets; a thread renews every ttl/3."""

    def __init__(self, url: StoreURL, store: Store, cluster_cidrs: list[str], masks: list[int], node: str,
                 ttl: int, record: Callable[[list[str]], NodeRecord]) -> None:  # fmt: skip
        self.allocator = NodeSubnetAllocator(store, cluster_cidrs, masks)
        self.records = RecordStore(url, store)
        self.node, self.ttl, self.make_record = node, ttl, record
        self.subnets: list[str] = []
        self.last_renewed = float("-inf")  # monotonic
        self.renewals = 0
        self.failures = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def acquire(self, wait: float = 60.0) -> list[str]:
        """The node's subnets (the ones it held, if still held); retried while the store is away."""
        deadline = time.monotonic() + wait
        while True:
            try:
                self.subnets = [str(s) for s in self.allocator.acquire(self.node, self.ttl)]
                self._publish()
                return self.subnets
            except (IPAMError, EtcdError) as e:
                if time.monotonic() > deadline:
                    raise
                log.warning("cannot lease a subnet yet: %s", e)
                time.sleep(0.5)

    def _publish(self) -> None:
        self.renewals += 1
        rec = self.make_record(self.subnets)
        self.records.write(NodeRecord(**{**asdict(rec), "ttl": self.ttl, "renewed": self.renewals}))
        self.last_renewed = time.monotonic()

    def renew(self) -> None:
        held = sorted(str(s) for s in self.allocator.renew(self.node))
        if held != sorted(self.subnets):
            # Expired (store away longer than the TTL): take a subnet again, the same if free.
            log.warning("subnet lease lost (held %s); acquiring again", held)
            got = [str(s) for s in self.allocator.acquire(self.node, self.ttl)]
            if got != self.subnets:
                log.error("subnet changed from %s to %s: pods on the old subnet lose their routes", self.subnets, got)
            self.subnets = got
        self._publish()

    def healthy(self) -> bool:
        return time.monotonic() - self.last_renewed <= self.ttl

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="podnet-agent-lease", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(max(self.ttl / 3, 0.5)):
            try:
                self.renew()
            except (IPAMError, EtcdError) as e:  # the store away for a moment: the lease outlives a few misses
                self.failures += 1
                log.warning("lease renewal failed: %s", e)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()


@dataclass
class RecordWatcher:
    """Every node's record, kept current: etcd list + watch, or a polled directory."""

    records: RecordStore
    on_change: Callable[[dict[str, NodeRecord]], None]
    current: dict[str, NodeRecord] = field(default_factory=dict)
    relists: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    _watch: object = None
    _seen: dict[str, tuple[int, float]] = field(default_factory=dict)  # file stores: renewed, monotonic

    def start(self) -> None:
        target = self._run_etcd if self.records.client is not None else self._run_files
        self._thread = threading.Thread(target=target, name="podnet-agent-records", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        w = self._watch
        if w is not None:
            w.close()  # type: ignore[attr-defined]
        if self._thread is not None:
            self._thread.join()

    def _set(self, new: dict[str, NodeRecord]) -> None:
        if {n: r.routing() for n, r in new.items()} != {n: r.routing() for n, r in self.current.items()}:
            self.current = new
            self.on_change(dict(new))
        else:
            self.current = new

    def _run_etcd(self) -> None:
        client = self.records.client
        assert client is not None
        prefix = self.records.prefix
        backoff = 0.2
        while not self._stop.is_set():
            try:
                kvs, revision = client.list_prefix(prefix)
                self.relists += 1
                state = {}
                for kv in kvs:
                    rec = _decode(kv.key[len(prefix) :], kv.value)
                    if rec is not None:
                        state[rec.node] = rec
                self._set(state)
                backoff = 0.2
                while not self._stop.is_set():
                    self._watch = watch = client.watch_prefix(prefix, revision + 1)
                    if self._stop.is_set():
                        watch.close()
                        return
                    try:
                        for batch in watch:
                            if batch.compacted or batch.canceled:
                                raise EtcdError("watch compacted")
                            for ev in batch.events:
                                revision = max(revision, ev.kv.mod_revision)
                                node = ev.kv.key[len(prefix) :]
                                rec = _decode(node, ev.kv.value) if ev.kind != "DELETE" else None
                                if rec is None:
                                    state.pop(node, None)
                                else:
                                    state[node] = rec
                            self._set(dict(state))
                    except TimeoutError:
                        continue
                    finally:
                        watch.close()
            except EtcdError as e:
                # Routes stay as they are meanwhile: a store outage must not cut pods off.
                if self._stop.wait(backoff):
                    return
                log.warning("node records: %s; listing again", e)
                backoff = min(backoff * 2, 5.0)

    def _run_files(self) -> None:
        while True:
            now = time.monotonic()
            state = {}
            try:
                names = os.listdir(self.records.prefix)
            except FileNotFoundError:
                names = []
            for name in names:
                if not name.endswith(".json"):
                    continue
                try:
                    with open(os.path.join(self.records.prefix, name)) as f:
                        rec = _decode(name[: -len(".json")], f.read())
                except OSError:
                    continue
                if rec is None:
                    continue
                renewed, since = self._seen.get(rec.node, (-1, now))
                if rec.renewed != renewed:
                    self._seen[rec.node] = (rec.renewed, now)
                    since = now
                if now - since <= rec.ttl:
                    state[rec.node] = rec
            self._set(state)
            if self._stop.wait(1.0):
                return


def _decode(node: str, text: str) -> NodeRecord | None:
    try:
        rec = NodeRecord.from_json(text)
    except (ValueError, TypeError):
        log.error("node record %s: unreadable; ignored", node)
        return None
    return rec if rec.node == node else None
