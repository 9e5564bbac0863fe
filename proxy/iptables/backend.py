"""The iptables mode: the renderer and the executor put together behind the Backend interface."""

from __future__ import annotations

import logging

from proxy.backend import ApplyError
from proxy.iptables.executor import Executor, RestoreError, detect_flavor
from proxy.iptables.render import RenderState, render
from proxy.iptables.transaction import Transaction
from proxy.model import NodeContext, ProxyModel, ServicePortName

log = logging.getLogger("podnet.proxy")


class IptablesBackend:
    mode = "iptables"

    def __init__(self, node: NodeContext, flavor: str | None = None):
        self.node = node
        self.executor = Executor(flavor or detect_flavor())
        self.state = RenderState()

    def render(self, model: ProxyModel, changed: set[ServicePortName], full: bool) -> Transaction:
        hooks = None
        if self.state.present is None:
            full = True
            self.state.present, hooks = self.executor.inspect()
        elif full or not self.state.hooks_ok:
            hooks = self.executor.hook_changes()
        return render(model, changed, full, self.state, hooks)

    def apply(self, tx: Transaction) -> None:
        if tx.full and self.node.localhost_nodeports and self.node.family == 4:
            _enable_route_localnet()
        try:
            self.executor.restore(tx.chunks())
        except RestoreError as e:
            self.state = RenderState()  # unknown now: the next sync reads the kernel and is full
            raise ApplyError(str(e)) from e
        assert tx.state is not None  # render() always sets it
        self.state = tx.state

    def cleanup(self) -> list[str]:
        text = self.executor.cleanup_text()
        if text:
            self.executor.restore([text])
        self.state = RenderState()
        return [line for line in text.splitlines() if line.startswith(("-D", "-X"))]


def _enable_route_localnet() -> None:
    """127.0.0.1:nodePort must be DNATable (kube-proxy's --iptables-localhost-nodeports); this
    sysctl belongs to the network namespace the proxy runs in."""
    try:
        with open("/proc/sys/net/ipv4/conf/all/route_localnet", "w") as f:
            f.write("1")
    except OSError as e:
        log.warning("cannot enable route_localnet (localhost node ports will not work): %s", e)
