"""The iptables mode: the renderer and the executor put together behind the Backend interface."""

from __future__ import annotations

import logging

from proxy.backend import ApplyError
from proxy.iptables.chains import TABLES
from proxy.iptables.executor import Executor, RestoreError, detect_flavor
from proxy.iptables.render import RenderState, render
from proxy.iptables.transaction import Transaction
from proxy.model import NodeContext, ProxyModel, ServicePortName

log = logging.getLogger("podnet.proxy")


class IptablesBackend:
    mode = "iptables"

    def __init__(self, node: NodeContext, flavor: str | None = None):
        self.node = node
        self.executor = Executor(flavor or detect_flavor(), node.family)
        self.state = RenderState()

    def render(self, model: ProxyModel, changed: set[ServicePortName], full: bool) -> Transaction:
        # Touches nothing: what only the kernel can say (our chains left from an earlier run,
        # the jump rules in the built-in chains) is read by apply, which completes the
        # transaction before it streams it.
        state = self.state
        if state.present is None:
            full = True
            state = RenderState(ports=state.ports, present={t: set() for t in TABLES}, hooks_ok=False)
        tx = render(model, changed, full, state)
        tx.inspect = self.state.present is None
        tx.check_hooks = full or not self.state.hooks_ok
        return tx

    def apply(self, tx: Transaction) -> None:
        if tx.full and self.node.localhost_nodeports and self.node.family == 4:
            _enable_route_localnet()
        try:
            self._complete(tx)
            self.executor.restore(tx.chunks())
        except RestoreError as e:
            self.state = RenderState()  # unknown now: the next sync reads the kernel and is full
            raise ApplyError(str(e)) from e
        assert tx.state is not None  # render() always sets it
        self.state = tx.state

    def _complete(self, tx: Transaction) -> None:
        """Add what needs the kernel: stale chains of ours to delete, jump rules to fix."""
        if tx.inspect:
            tx.kernel, hooks = self.executor.inspect()  # the renderer deletes what of it is not wanted
        elif tx.check_hooks:
            hooks = self.executor.hook_changes()
        else:
            return
        for table, line in hooks[0] + hooks[1]:
            tx.tables[table].hooks.append(line)
        tx.reset_text()

    def cleanup(self) -> list[str]:
        text = self.executor.cleanup_text()
        if text:
            self.executor.restore([text])
        self.state = RenderState()
        return [line for line in text.splitlines() if line.startswith(("-D", "-X"))]

    def show(self) -> str:
        out = []
        for table in TABLES:
            lines = [line for line in self.executor.save(table).splitlines() if "PODNET-" in line]
            if lines:
                out += [f"*{table}", *lines]
        return "\n".join(out) + "\n" if out else ""


def _enable_route_localnet() -> None:
    """127.0.0.1:nodePort must be DNATable (kube-proxy's --iptables-localhost-nodeports); this
    sysctl belongs to the network namespace the proxy runs in."""
    try:
        with open("/proc/sys/net/ipv4/conf/all/route_localnet", "w") as f:
            f.write("1")
    except OSError as e:
        log.warning("cannot enable route_localnet (localhost node ports will not work): %s", e)
