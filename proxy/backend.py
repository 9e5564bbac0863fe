"""What a proxy mode provides: a renderer that plans and an executor that applies.

A mode is pluggable: `render(model, changed, full)` reads and touches nothing in the kernel and returns a transaction
that renders to text (for logs and golden tests); `apply(tx)` makes the kernel match it in one
atomic step or raises ApplyError leaving the previous rules in place; `cleanup()` removes
everything the mode ever made and nothing else; `show()` prints what it has programmed. The
CLI and the daemon reach the modes through this interface only.

A mode that rebuilds its rules from nothing may also offer `render_full(model, build)`: the
transaction of a full sync that reads the model as `build` (model.ModelBuild) makes it, so
the kernel's tool parses the first service ports while the next are built; it returns None
when it would not rebuild (the proxier then builds the model first and calls `render`).
"""

from __future__ import annotations

import dataclasses
import importlib
from typing import Protocol

from proxy.model import NodeContext, ProxyModel, ServicePortName


class ApplyError(RuntimeError):
    """The kernel refused a transaction; the previous rules are still in place."""


class Transaction(Protocol):
    full: bool

    def text(self) -> str: ...

    def rule_counts(self) -> dict[str, int]: ...


class Backend(Protocol):
    mode: str

    def render(self, model: ProxyModel, changed: set[ServicePortName], full: bool) -> Transaction: ...

    def apply(self, tx: Transaction) -> None: ...

    def cleanup(self) -> list[str]: ...

    def show(self) -> str:
        """What of this mode is programmed in this network namespace, as text."""
        ...


# mode name -> "module:factory"; the factory takes the NodeContext.
MODES = {
    "iptables": "proxy.iptables.backend:IptablesBackend",
    "nftables": "proxy.nftables.backend:NftablesBackend",
    "ipvs": "proxy.ipvs.backend:IpvsBackend",
}
PLANNED: tuple[str, ...] = ()


class UnsupportedMode(ValueError):
    pass


def backend_for(mode: str, node: NodeContext, **options) -> Backend:
    if mode not in MODES:
        if mode in PLANNED:
            raise UnsupportedMode(f"--proxy-mode={mode} is not supported yet (supported: {', '.join(MODES)})")
        raise UnsupportedMode(f"--proxy-mode={mode!r} is unknown (supported: {', '.join(MODES)})")
    module, _, factory = MODES[mode].partition(":")
    return getattr(importlib.import_module(module), factory)(node, **options)


def cleanup_all(node: NodeContext, options: dict[str, dict] | None = None) -> list[str]:
    """What `--cleanup` does, as kube-proxy's does: remove what every mode ever made (a node
    may have switched modes), each mode touching only its own objects."""
    removed: list[str] = []
    for mode in MODES:
        # both families: a dual-stack node has ip6tables rules too (nftables and IPVS clean
        # up every family of theirs at once)
        for family in (4, 6) if mode == "iptables" else (node.family,):
            ctx = dataclasses.replace(node, family=family)
            removed += backend_for(mode, ctx, **(options or {}).get(mode, {})).cleanup()
    return removed
