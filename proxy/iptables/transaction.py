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

# nat first: its pieces render the service ports, which also gives the filter table its rules
ORDER = ("nat", "filter")
assert sorted(ORDER) == sorted(TABLES)

if TYPE_CHECKING:
    from proxy.iptables.render import RenderState


@dataclass
class TableChanges:
    declare: list[str] = field(default_factory=list)  # shared chains, created or flushed first
    # the service ports' pieces (each declares its own chains and fills them), rendered while
    # streaming; the rest of the table is complete once they are
    lazy: list[Callable[[], Iterable[str]]] = field(default_factory=list)
    rules: list[str] = field(default_factory=list)  # the shared chains' "-A CHAIN …" lines
    hooks: list[str] = field(default_factory=list)  # "-I BUILTIN …" / "-D BUILTIN …" lines
    delete: list[str] = field(default_factory=list)  # chains removed (flushed first)


@dataclass
class Transaction:
    full: bool
    tables: dict[str, TableChanges] = field(default_factory=lambda: {t: TableChanges() for t in TABLES})
    counter: Callable[[], dict[str, int]] | None = None  # rules of ours per table after this
    state: RenderState | None = None  # the renderer's state after this; set once the text was streamed
    inspect: bool = False  # the kernel's chains of ours are unknown: apply reads them first
    kernel: dict[str, set[str]] | None = None  # our chains apply found: a full sync deletes those it does not write
    check_hooks: bool = False  # apply checks the jump rules in the built-in chains
    _text: str | None = None

    def chunks(self) -> Iterator[str]:
        """The iptables-restore input, piece by piece: an executor can stream it into a running
        iptables-restore while the endpoint chains are still being rendered."""
        if self._text is not None:
            yield self._text
            return
        for name in ORDER:
            t = self.tables[name]
            yield "\n".join([f"*{name}", *(f":{c} - [0:0]" for c in t.declare)]) + "\n"
            for produce in t.lazy:
                yield from produce()
            # read only now: the shared rules and the stale chains are known once the pieces are
            declared = set(t.declare)
            tail = [*t.rules, *(f":{c} - [0:0]" for c in t.delete if c not in declared), *t.hooks]
            tail += [*(f"-X {c}" for c in t.delete), "COMMIT"]
            yield "\n".join(tail) + "\n"

    def text(self) -> str:
        """The whole input as one text (for logs and golden tests); renders what is still lazy."""
        if self._text is None:
            self._text = "".join(self.chunks())
        return self._text

    def reset_text(self) -> None:
        self._text = None

    def rule_counts(self) -> dict[str, int]:
        return self.counter() if self.counter else {}
