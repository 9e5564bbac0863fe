"""How full a range is: what `podnet ipam show` prints, one row per range."""

from __future__ import annotations

from dataclasses import dataclass

from ipam.ranges import Network


@dataclass(frozen=True)
class RangeUsage:
    kind: str
    cidr: Network
    size: int
    used: int
    unit: str  # what one element of the range is: "/24 subnets", "addresses"

    @property
    def free(self) -> int:
        return self.size - self.used
