"""Label selectors as kubectl's -l takes them: `app=frontend,track!=canary,version`."""

from __future__ import annotations

import re
from dataclasses import dataclass

_TERM = re.compile(r"^\s*(!?)([A-Za-z0-9_./-]+)\s*(?:(==|=|!=)\s*([A-Za-z0-9_.-]*))?\s*$")


class SelectorError(ValueError):
    pass


@dataclass(frozen=True)
class Requirement:
    key: str
    op: str  # "=", "!=", "exists", "!exists"
    value: str = ""

    def matches(self, labels: dict[str, str]) -> bool:
        if self.op == "exists":
            return self.key in labels
        if self.op == "!exists":
            return self.key not in labels
        if self.op == "=":
            return labels.get(self.key) == self.value
        return labels.get(self.key) != self.value


def parse(text: str | None) -> tuple[Requirement, ...]:
    if not text:
        return ()
    reqs = []
    for term in text.split(","):
        m = _TERM.match(term)
        if not m:
            raise SelectorError(f"-l: {term!r} is not KEY, !KEY, KEY=VALUE or KEY!=VALUE")
        neg, key, op, value = m.groups()
        if op is None:
            reqs.append(Requirement(key, "!exists" if neg else "exists"))
        elif neg:
            raise SelectorError(f"-l: {term!r}: '!' goes only before a bare key")
        else:
            reqs.append(Requirement(key, "!=" if op == "!=" else "=", value))
    return tuple(reqs)


def matches(reqs: tuple[Requirement, ...], labels: dict[str, str]) -> bool:
    return all(r.matches(labels) for r in reqs)


def selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    """A Service's equality selector."""
    return all(labels.get(k) == v for k, v in selector.items())
