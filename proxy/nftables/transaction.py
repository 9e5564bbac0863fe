"""One nftables transaction: the lines of one `nft -f` run, in the order the kernel needs them
(new sets and chains before rules that name them; element deletes before adds; chains and sets
deleted last, once nothing refers to them). All of it is applied or none of it."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from proxy.nftables.shadow import Shadow


@dataclass
class Transaction:
    full: bool
    table: str  # "ip podnet"
    recreate: bool = False  # start from an empty table (the kernel's state is unknown)
    declare: list[str] = field(default_factory=list)  # add table / chain / map / set lines
    rules: list[str] = field(default_factory=list)  # flush chain + add rule lines
    element_deletes: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    element_adds: dict[str, list[tuple[str, str]]] = field(default_factory=lambda: defaultdict(list))
    delete_chains: list[str] = field(default_factory=list)
    delete_sets: list[str] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    state: Shadow | None = None  # the backend's shadow once this transaction has been applied
    # more of the transaction, produced lazily (a rebuild streams to nft while it is planned)
    stream: Iterator[str] | None = None
    # what is left once the whole text is written (the shadow's bookkeeping of a rebuild): it
    # runs while nft, at the end of its input, evaluates and commits
    finish: Callable[[], None] | None = None
    _streamed: list[str] | None = None

    def chunks(self) -> Iterator[str]:
        """The text in pieces, planning the streamed part as it goes (once)."""
        yield self._eager_text()
        if self._streamed is not None:
            yield from self._streamed
        elif self.stream is not None:
            self._streamed = []
            for piece in self.stream:
                self._streamed.append(piece)
                yield piece

    def text(self) -> str:
        text = "".join(self.chunks())
        self.complete()
        return text

    def complete(self) -> None:
        """Run `finish` (once), after the whole text has been read."""
        finish, self.finish = self.finish, None
        if finish is not None:
            finish()

    def _eager_text(self) -> str:
        t = self.table
        out: list[str] = []
        if self.recreate:
            # `add` first so that `delete` cannot fail on a table that is not there
            out += [f"add table {t}", f"delete table {t}"]
        out += self.declare
        out += self.rules
        # sorted, so that the same state always reads the same (logs, golden tests)
        for name, keys in sorted(self.element_deletes.items()):
            if keys:
                out.append(f"delete element {t} {name} {{ {', '.join(sorted(keys))} }}")
        for name, items in sorted(self.element_adds.items()):
            items.sort()
            for i in range(0, len(items), 5000):  # keep lines a sane length
                chunk = items[i : i + 5000]
                body = ", ".join(f"{k} : {v}" if v else k for k, v in chunk)
                out.append(f"add element {t} {name} {{ {body} }}")
        # every doomed chain is emptied before any is deleted: they may jump to each other
        out += [f"flush chain {t} {c}" for c in self.delete_chains]
        out += [f"delete chain {t} {c}" for c in self.delete_chains]
        out += [f"delete set {t} {s}" for s in self.delete_sets]
        return "\n".join(out) + "\n" if out else ""

    def rule_counts(self) -> dict[str, int]:
        return dict(self.counts)

    def empty(self) -> bool:
        return not self.text()
