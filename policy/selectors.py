"""metav1.LabelSelector: matchLabels and matchExpressions (In, NotIn, Exists, DoesNotExist),
ANDed; an empty selector selects everything."""

from __future__ import annotations

from dataclasses import dataclass

OPERATORS = ("In", "NotIn", "Exists", "DoesNotExist")


@dataclass(frozen=True)
class Expression:
    key: str
    operator: str
    values: tuple[str, ...] = ()

    def matches(self, labels: dict[str, str]) -> bool:
        if self.operator == "Exists":
            return self.key in labels
        if self.operator == "DoesNotExist":
            return self.key not in labels
        if self.operator == "In":
            return self.key in labels and labels[self.key] in self.values
        # NotIn: as the apimachinery selector, a missing key is "not in"
        return self.key not in labels or labels[self.key] not in self.values


@dataclass(frozen=True)
class LabelSelector:
    match_labels: tuple[tuple[str, str], ...] = ()
    expressions: tuple[Expression, ...] = ()

    @property
    def empty(self) -> bool:
        return not self.match_labels and not self.expressions

    def matches(self, labels: dict[str, str]) -> bool:
        return all(labels.get(k) == v for k, v in self.match_labels) and all(
            e.matches(labels) for e in self.expressions
        )

    def text(self) -> str:
        """kubectl's rendering (`app=web,tier in (a,b)`; `<none>` for the empty selector)."""
        parts = [f"{k}={v}" for k, v in self.match_labels]
        for e in self.expressions:
            if e.operator == "Exists":
                parts.append(e.key)
            elif e.operator == "DoesNotExist":
                parts.append(f"!{e.key}")
            else:
                parts.append(f"{e.key} {'in' if e.operator == 'In' else 'notin'} ({','.join(e.values)})")
        return ",".join(parts) or "<none>"


EVERYTHING = LabelSelector()
