"""Value: what a frozen dataclass gives its instances (equality, hashing and a repr by
field), for the plain classes on the CNI plugin's ADD path (see the note above
ipam.ranges.Range for why they are not dataclasses). A subclass lists its fields in
__slots__ and assigns each once in __init__, declared Final for the type checker."""

from __future__ import annotations


class Value:
    __slots__: tuple[str, ...] = ()

    def _fields(self) -> tuple:
        return tuple(getattr(self, name) for name in self.__slots__)

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return self._fields() == other._fields()

    def __hash__(self) -> int:
        return hash(self._fields())

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={value!r}" for name, value in zip(self.__slots__, self._fields(), strict=True))
        return f"{type(self).__name__}({fields})"
