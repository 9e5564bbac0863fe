"""One iptables transaction: what an `iptables-restore --noflush` run will do, as data.

Declaring a chain (`:CHAIN - [0:0]`) creates it or flushes it; chains not declared are left
exactly as they are, which is what makes a partial sync partial. The text is also what logs
and golden tests show.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from proxy.iptables.chains import TABLES

if TYPE_CHECKING:
    from proxy.iptables.render import RenderState


@dataclass
class TableChanges:
    declare: list[str] = field(default_factory=list)  # chains created or flushed, then filled
    rules: list[str] = field(default_factory=list)  # "-A CHAIN …" lines
    lazy: list[Callable[[], Iterable[str]]] = field(default_factory=list)  # more, rendered while streaming
    hooks: list[str] = field(default_factory=list)  # "-I BUILTIN …" / "-D BUILTIN …" lines
    delete: list[str] = field(default_factory=list)  # chains removed (flushed first)


@dataclass
class Transaction:
    full: bool
    tables: dict[str, TableChanges] = field(default_factory=lambda: {t: TableChanges() for t in TABLES})
    counter: Callable[[], dict[str, int]] | None = None  # rules of ours per table after this
    state: RenderState | None = None  # the renderer's state once this transaction has been applied
    _text: str | None = None

    def chunks(self) -> Iterator[str]:
        """The iptables-restore input, piece by piece: an executor can stream it into a running
        iptables-restore while the endpoint chains are still being rendered."""
        if self._text is not None:
            yield self._text
            return
        for name in TABLES:
            t = self.tables[name]
            head = [f"*{name}"]
            declared = set(t.declare)
            head += [f":{c} - [0:0]" for c in t.declare]
            head += [f":{c} - [0:0]" for c in t.delete if c not in declared]
            head += t.rules
            yield "\n".join(head) + "\n"
            for produce in t.lazy:
                yield from produce()
            tail = [*t.hooks, *(f"-X {c}" for c in t.delete), "COMMIT"]
            yield "\n".join(tail) + "\n"

    def text(self) -> str:
        """The whole input as one text (for logs and golden tests); renders what is still lazy."""
        if self._text is None:
            self._text = "".join(self.chunks())
        return self._text

    def rule_counts(self) -> dict[str, int]:
        return self.counter() if self.counter else {}
