"""NetworkPolicy on this node: the cluster's Pods, Namespaces and NetworkPolicies (from the
agent's objects source, shared with the service proxy) -> the rules of this node's pods
(policy/model.py) -> table `inet podnet-policy` (policy/nft.py), rewritten whole whenever what
it would hold changes. Stopping leaves the table: pods stay isolated while the agent restarts.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence

from cluster.source import Event
from policy import nft
from policy.cluster import ClusterView
from policy.model import node_rules
from proxy.runner import Runner

log = logging.getLogger("podnet.agent")

MAX_SYNC = 30.0  # rewritten at least this often: a table someone flushed comes back
POLICY_KINDS = ("Pod", "Namespace", "NetworkPolicy")


class NetworkPolicies:
    def __init__(self, node: str, min_sync: float = 0.2, netns: str | None = None) -> None:
        self.node = node
        self.netns = netns  # tests drive it from outside the namespace it programs
        self.view = ClusterView()
        self.lock = threading.Lock()
        self.synced_once = threading.Event()
        self.source_synced = False
        self.written = ""
        self.checked_at = float("-inf")  # when the kernel was last asked whether the table is there
        self.syncs = 0
        self.failures = 0
        self.isolated_pods = 0
        self.last_success: float | None = None
        self.revision = 0  # the store revision every change up to which has been taken in
        self.synced_revision = 0  # ... and is in the table
        self.view_changed = True  # since the last sync: else a sync only vouches for a revision
        self.runner = Runner(self._sync, min_interval=min_sync, max_interval=MAX_SYNC,
                             retry_interval=max(min_sync, 0.5))  # fmt: skip

    # -- the Sink the objects source feeds --------------------------------------------------
    def events(self, events: Sequence[Event]) -> None:
        mine = [e for e in events if e.ref.kind in POLICY_KINDS]
        if not mine:
            return
        try:
            with self.lock:
                changed = self.view.apply(mine)
                self.view_changed |= changed
        except Exception:  # the source is the proxy's too: a policy bug must never stop it
            log.exception("network policy: objects not taken in")
            self.failures += 1
            return
        if changed and self.source_synced:
            self.runner.request()

    def progress(self, revision: int) -> None:
        with self.lock:
            self.revision = max(self.revision, revision)
        if self.source_synced and revision > self.synced_revision:
            self.runner.request()  # nothing to rewrite, perhaps, but a revision to vouch for

    def synced(self) -> None:
        # nothing is written before the first complete view: a half-listed cluster would
        # isolate pods without the peers that policies allow
        self.source_synced = True
        self.runner.request()

    # -- the sync ---------------------------------------------------------------------------
    def _sync(self) -> None:
        if not self.source_synced:
            return
        # the kernel is asked whether the table is still there about once per MAX_SYNC: on
        # every pod change it would cost a fork of nft
        now = time.monotonic()
        due = now - self.checked_at >= MAX_SYNC * 0.9
        with self.lock:
            revision = self.revision  # the view below holds every change up to it
            if not (self.view_changed or due or not self.synced_once.is_set()):
                self.synced_revision = max(self.synced_revision, revision)  # the table holds it already
                return
            self.view_changed = False
            rules = node_rules(self.view, self.node)
        if due:
            self.checked_at = now
        text = nft.render(rules)
        if text != self.written or (due and not nft.present(self.netns)):
            try:
                nft.apply(text, self.netns)
            except nft.NftError:
                self.failures += 1
                self.view_changed = True  # written again at the retry
                log.exception("network policy: table not written")
                raise
            self.written = text
            log.info("network policy: %d pods isolated on %s", len(rules), self.node)
        self.isolated_pods = len(rules)
        self.synced_revision = max(self.synced_revision, revision)
        self.syncs += 1
        self.last_success = time.time()
        self.synced_once.set()

    def in_sync(self) -> bool:
        return self.synced_once.is_set() and self.runner.failures == 0

    def start(self) -> None:
        self.runner.start()

    def stop(self) -> None:
        self.runner.stop()


def remove_table(netns: str | None = None) -> None:
    """With --no-network-policy: a table an earlier run left must not keep isolating pods."""
    if nft.cleanup(netns):
        log.info("network policy off: removed table %s", nft.TABLE)
