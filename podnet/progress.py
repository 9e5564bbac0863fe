"""Progress of a long operation (`lab up`, `lab scale` to hundreds, `probe` over many pairs):
a bar on a terminal, plain lines elsewhere (a log, a pipe, CI), and always on stderr so that
what a command prints on stdout (`-o json`) stays clean."""

from __future__ import annotations

import sys
import time
from typing import Any, Protocol, TextIO

import click


class Meter(Protocol):
    def update(self, done: int, total: int, note: str = "") -> None: ...

    def close(self) -> None: ...


def meter(label: str, file: TextIO | None = None, every: float = 0.5) -> Meter:
    file = file or sys.stderr
    return Bar(label, file) if file.isatty() else Lines(label, file, every)


class Silent:
    def update(self, done: int, total: int, note: str = "") -> None:
        pass

    def close(self) -> None:
        pass


class Lines:
    """A line per change, but at most one every `every` seconds (hundreds of pods starting
    would flood a log), and always the last one."""

    def __init__(self, label: str, file: TextIO, every: float = 0.5):
        self.label, self.file, self.every = label, file, every
        self.last: tuple[int, int, str] | None = None
        self.printed: tuple[int, int, str] | None = None
        self.printed_at = 0.0

    def update(self, done: int, total: int, note: str = "") -> None:
        self.last = (done, total, note)
        if self.last != self.printed and (done >= total or time.monotonic() - self.printed_at >= self.every):
            self._print()

    def _print(self) -> None:
        assert self.last is not None
        done, total, note = self.last
        click.echo(f"{self.label} {done}/{total}" + (f" ({note})" if note else ""), file=self.file)
        self.printed, self.printed_at = self.last, time.monotonic()

    def close(self) -> None:
        if self.last is not None and self.last != self.printed:
            self._print()


class Bar:
    """click's progress bar; the total may change while it runs (a scale changed again)."""

    def __init__(self, label: str, file: TextIO):
        self.label, self.file = label, file
        self.bar: Any = None  # drawn at the first update, when the total is known

    def update(self, done: int, total: int, note: str = "") -> None:
        if self.bar is None:
            self.bar = click.progressbar(
                length=max(total, 1), label=self.label, file=self.file, show_pos=True, show_eta=False,
                item_show_func=lambda note: note,
            )  # fmt: skip
            self.bar.__enter__()
        self.bar.length = max(total, 1)
        self.bar.pos = min(done, self.bar.length)
        self.bar.current_item = note or None
        self.bar.render_progress()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.__exit__(None, None, None)
