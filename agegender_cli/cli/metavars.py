"""Plain metavars in --help (PATH, INTEGER, [a|b], nothing on flags) instead of Typer's <bool> and <list[str]>;
options left out cost no coercion."""

from __future__ import annotations

from pathlib import Path
from typing import Any, get_args

import typer
from typer.core import TyperArgument, TyperCommand, TyperGroup, TyperOption

WORDS: dict[Any, str] = {str: "TEXT", int: "INTEGER", float: "NUMBER", Path: "PATH"}


def plain_type(param: TyperArgument | TyperOption) -> str | None:
    """What a value of `param` is, in the words of classic command-line help; None for a flag."""
    if getattr(param, "is_flag", False):
        return None
    if param.metavar is not None:
        return param.metavar
    described = param.type_descriptor
    if described.is_choice:
        return "[" + "|".join(map(str, described.choices or ())) + "]"
    if described.is_path:
        return "PATH"
    element = get_args(described.annotation)[0] if described.is_list else described.annotation
    return WORDS.get(element, "TEXT")


class PlainOption(TyperOption):
    def display_type_rich(self, ctx: typer.Context) -> str | None:
        return plain_type(self)

    def process_value(self, ctx: typer.Context, value: Any) -> Any:
        """An optional single-value option not given (None) stays None, as Typer's coercion would leave it, but
        without building that coercion: it imports pydantic (a tenth of a second), and `agegender COMMAND --help`
        processes the root's --threads before it prints the command's help."""
        if value is None and not self.required and not (self.multiple or self.nargs == -1):
            return value if self.callback is None else self.callback(ctx, self, value)
        return super().process_value(ctx, value)


class PlainArgument(TyperArgument):
    def display_type_rich(self, ctx: typer.Context) -> str | None:
        return plain_type(self)

    def _usage_display_name(self) -> str:
        """INPUTS... or [INPUTS]... on the usage line."""
        name = self.display_name_raw.upper()
        name = name if self.required else f"[{name}]"
        return name + ("..." if self.nargs != 1 else "")


PLAIN = {TyperOption: PlainOption, TyperArgument: PlainArgument}


def _plain(param: Any) -> None:
    # Typer builds the parameters itself; only their class changes, to one that differs in the help text alone
    if type(param) in PLAIN:
        param.__class__ = PLAIN[type(param)]


def _plain_params(params: list[Any]) -> list[Any]:
    for param in params:
        _plain(param)
    return params


class PlainCommand(TyperCommand):
    """A command whose --help shows plain metavars."""

    def get_params(self, ctx: typer.Context) -> list[Any]:
        return _plain_params(super().get_params(ctx))


class PlainGroup(TyperGroup):
    """The root group, with plain metavars like its commands."""

    def get_params(self, ctx: typer.Context) -> list[Any]:
        return _plain_params(super().get_params(ctx))
