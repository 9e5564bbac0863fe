"""One `-o/--output` vocabulary for every `podnet` command, kubectl's:

- `text`  the human view (the default; kubectl's unnamed default);
- `wide`  the human view with more columns, where a command has more to say;
- `json`, `yaml`  the data itself, for scripts (the same dict either way);
- `name`  one `kind/name` per line, for piping into another command.

A command declares which of these fit it (`output_option("text", "json", "yaml")`) and
hands `emit` its data plus the lines of each human view; the choice of format lives here
only, so every command spells JSON and YAML the same way.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeVar

import click

FORMATS = ("text", "wide", "json", "yaml", "name")
# Older spellings of `text` that commands used before they shared this vocabulary: still
# accepted, so scripts written against them keep working.
ALIASES = {"table": "text"}

F = TypeVar("F", bound=Callable[..., Any])
Lines = Iterable[str] | Callable[[], Iterable[str]]


class OutputChoice(click.Choice):
    """click.Choice that also takes the old aliases and maps them onto the vocabulary."""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, str) and value in ALIASES:
            value = ALIASES[value]
        return super().convert(value, param, ctx)


def output_option(*formats: str, default: str = "text") -> Callable[[F], F]:
    """The `-o/--output` option, offering `formats` (default: text, json, yaml)."""
    formats = formats or ("text", "json", "yaml")
    unknown = set(formats) - set(FORMATS)
    if unknown or default not in formats:
        raise ValueError(f"output_option: {sorted(unknown) or default} not in {FORMATS}")
    return click.option(
        "-o",
        "--output",
        type=OutputChoice(list(formats)),
        default=default,
        show_default=True,
        help="Output format: " + ", ".join(formats) + ".",
    )


def render(output: str, data: Any, text: Lines = (), *, wide: Lines | None = None, names: Lines | None = None) -> str:
    """The text `emit` prints (no trailing newline for an empty human view).

    `data` must be JSON-serialisable (dataclasses converted by the caller); `text`, `wide`
    and `names` are the lines of each view, or callables that make them, so a command pays
    only for the view asked for. `wide` falls back to `text`.
    """
    if output == "json":
        return json.dumps(data, indent=2)
    if output == "yaml":
        import yaml  # only when asked: it is not needed by any other view

        return yaml.safe_dump(data, sort_keys=False, default_flow_style=False).rstrip("\n")
    if output == "name":
        if names is None:
            raise click.UsageError("-o name: this command has no named objects to list")
        chosen: Lines = names
    elif output == "wide":
        chosen = wide if wide is not None else text
    elif output == "text":
        chosen = text
    else:
        raise click.UsageError(f"-o {output}: not one of {', '.join(FORMATS)}")
    lines = chosen() if callable(chosen) else chosen
    return "\n".join(lines)


def emit(output: str, data: Any, text: Lines = (), *, wide: Lines | None = None, names: Lines | None = None) -> None:
    """Print `data` in the chosen format (see `render`)."""
    out = render(output, data, text, wide=wide, names=names)
    if out:
        click.echo(out)


def columns(header: Sequence[str], rows: Iterable[Sequence[object]], *, right: Sequence[str] = ()) -> list[str]:
    """kubectl's table: upper-case headers, columns three spaces apart, no trailing blanks.
    Columns named in `right` (numbers) are right-aligned."""
    table = [[str(h) for h in header]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in table) for i in range(len(header))]
    out = []
    for row in table:
        cells = [c.rjust(w) if h in right else c.ljust(w) for c, w, h in zip(row, widths, header, strict=True)]
        out.append("   ".join(cells).rstrip())
    return out
