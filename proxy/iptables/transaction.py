"""One iptables transaction: what an `iptables-restore --noflush` run will do, as data.

Declaring a chain (`:CHAIN - [0:0]`) creates it or flushes it; chains not declared are left
exactly as they are, which is what makes a partial sync partial. The text is also what logs
and golden tests show.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from proxy.iptables.chains import TABLES


@dataclass
class TableChanges:
    declare: list[str] = field(default_factory=list)  # chains created or flushed, then filled
    rules: list[str] = field(default_factory=list)  # "-A CHAIN …" lines
    hooks: list[str] = field(default_factory=list)  # "-I BUILTIN …" / "-D BUILTIN …" lines
    delete: list[str] = field(default_factory=list)  # chains removed (flushed first)


@dataclass
class Transaction:
    full: bool
    tables: dict[str, TableChanges] = field(default_factory=lambda: {t: TableChanges() for t in TABLES})
    counts: dict[str, int] = field(default_factory=dict)  # rules of ours per table after this
    state: object = None  # the renderer's state once this transaction has been applied

    def text(self) -> str:
        out: list[str] = []
        for name in TABLES:
            t = self.tables[name]
            if not (t.declare or t.rules or t.hooks or t.delete):
                continue
            out.append(f"*{name}")
            out += [f":{c} - [0:0]" for c in t.declare]
            out += [f":{c} - [0:0]" for c in t.delete if c not in t.declare]
            out += t.rules
            out += t.hooks
            out += [f"-X {c}" for c in t.delete]
            out.append("COMMIT")
        return "\n".join(out) + "\n" if out else ""

    def rule_counts(self) -> dict[str, int]:
        return dict(self.counts)

    def empty(self) -> bool:
        return not self.text()
