"""The nftables mode: the shadow-copy planner and the `nft -f` executor behind the Backend
interface."""

from __future__ import annotations

import logging

from proxy.backend import ApplyError
from proxy.model import ModelBuild, NodeContext, ProxyModel, ServicePortName
from proxy.nftables import executor
from proxy.nftables.layout import FAMILIES
from proxy.nftables.shadow import Shadow, plan, rebuild
from proxy.nftables.transaction import Transaction

log = logging.getLogger("podnet.proxy")


class NftablesBackend:
    mode = "nftables"

    def __init__(self, node: NodeContext, netns: str | None = None):
        self.node = node
        self.netns = netns
        self.family = FAMILIES[node.family]
        self.shadow: Shadow | None = None  # None: the kernel's table is unknown; rebuild it

    def render(self, model: ProxyModel, changed: set[ServicePortName], full: bool) -> Transaction:
        # The planner updates the shadow in place; a failed plan or apply drops it.
        try:
            return plan(model, changed, full, self.shadow, self.family)
        except Exception:
            self.shadow = None
            raise

    def render_full(self, model: ProxyModel, build: ModelBuild) -> Transaction | None:
        """A rebuild of the table when the kernel's is unknown (the first sync, or after a
        failure), reading the service ports as `build` makes them: nft parses the first ones
        while the rest are built. None: the table is known, a full sync diffs against it."""
        if self.shadow is not None:
            return None
        return rebuild(model, build.ports(), self.family)

    def apply(self, tx: Transaction) -> None:
        try:
            if tx.stream is None or log.isEnabledFor(logging.DEBUG):
                text = tx.text()
                log.debug("nft transaction (%d lines):\n%s", text.count("\n"), text[:20000])
                executor.run(text, self.netns)
            else:  # a rebuild: nft parses while the rest is planned
                executor.run_stream(tx.chunks(), self.netns, after=tx.complete)
        except executor.NftError as e:
            self.shadow = None  # unknown now: the next sync rebuilds the table in one transaction
            raise ApplyError(str(e)) from e
        except Exception:
            self.shadow = None
            raise
        self.shadow = tx.state

    def show(self) -> str:
        return executor.show(self.node.family, self.netns)

    def cleanup(self) -> list[str]:
        self.shadow = None
        return executor.cleanup(self.netns)
