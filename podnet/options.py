"""Options of a command group that are also accepted after its subcommands, as kubectl's
global flags are: `podnet ipam --store URL clusterip list` and
`podnet ipam clusterip list --store URL` mean the same.

A `SharedOption` is declared once and given to a `SharedOptionsGroup`; the group attaches
it to every subcommand (and sub-group) when the subcommand is looked up, so commands added
later, in any module, get it without a decorator of their own. The value given last on the
command line wins; the default (or environment variable) applies when no level names it.
Commands read it with `option.get(ctx)`, never as a function argument, since which level
parsed it is incidental.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import click
from click.core import ParameterSource


class SharedOption:
    def __init__(self, *param_decls: str, default: Any = None, **attrs: Any) -> None:
        self.param_decls = param_decls
        self.default = default
        self.attrs = attrs
        probe = click.Option(param_decls)
        assert probe.name is not None
        self.name = probe.name
        self.key = f"podnet.shared.{self.name}"

    def make(self) -> click.Option:
        # No default on the option itself: a level that does not name it must not overwrite
        # what an outer level was given. The default is applied in `get`.
        return click.Option(self.param_decls, default=None, expose_value=False, callback=self._remember, **self.attrs)

    def _remember(self, ctx: click.Context, param: click.Parameter, value: Any) -> Any:
        source = ctx.get_parameter_source(param.name) if param.name else None
        if value is not None and source is not ParameterSource.DEFAULT:
            ctx.meta[self.key] = value  # ctx.meta is one dict shared by the whole context chain
        return value

    def attach(self, command: click.Command) -> None:
        """Give `command` this option (once), and pass it on if it is a group."""
        if not any(p.name == self.name for p in command.params):
            command.params.append(self.make())
        if isinstance(command, SharedOptionsGroup) and self not in command.shared:
            command.shared.append(self)

    def get(self, ctx: click.Context) -> Any:
        return ctx.meta.get(self.key, self.default)


class SharedOptionsGroup(click.Group):
    """A group whose `shared` options are accepted at its level and at every level below."""

    group_class = type  # groups made with `.group()` are of this class too, so they pass options on

    def __init__(self, *args: Any, shared: Sequence[SharedOption] = (), **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.shared: list[SharedOption] = []
        for option in shared:
            option.attach(self)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        command = super().get_command(ctx, cmd_name)
        if command is not None:
            for option in self.shared:
                option.attach(command)
        return command
