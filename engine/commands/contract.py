"""What every command shares beyond its options (docs/cli.md): help that names values the
way a user writes them, and an unexpected exception turned into exit 4 with one line.

Typer labels each option with its Python annotation (`<list[Path]>`, `<bool>`, `<str>`);
`ContractGroup` relabels every command's parameters as it resolves them: an explicit
metavar wins, flags show nothing, choices show their values, paths PATH, text TEXT.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any, get_args, get_origin

from typer.core import TyperArgument, TyperGroup

from engine.commands.exit_codes import ExitCode

DEBUG_ENV = "SLO_ENGINE_DEBUG"

_PLAIN_NAMES: dict[Any, str] = {str: "TEXT", int: "INTEGER", float: "NUMBER", Path: "PATH"}


def _label(param: Any) -> str | None:
    """What --help shows after the flag: None for arguments (their name says it)."""
    if isinstance(param, TyperArgument):
        return None
    if param.metavar is not None:
        return str(param.metavar)
    if getattr(param, "is_bool_flag", False):
        return ""
    descriptor = getattr(param, "type_descriptor", None)
    choices = getattr(descriptor, "choices", None)
    if choices:
        return "[" + "|".join(str(getattr(c, "value", c)) for c in choices) + "]"
    annotation = getattr(descriptor, "annotation", str)
    if get_origin(annotation) is list:
        (annotation,) = get_args(annotation)
    return _PLAIN_NAMES.get(annotation, "VALUE")


def plain_help(command: Any, ctx: Any) -> None:
    """Relabel the parameters of `command` (and of its subcommands) for --help, --help
    included (made now, with `ctx`'s names, and cached by the command). Only with a Typer
    that labels by annotation (`type_descriptor`); others already show click's names."""
    params = [*getattr(command, "params", []), command.get_help_option(ctx)]
    for param in params:
        if hasattr(param, "type_descriptor") and hasattr(param, "display_type_rich"):
            label = _label(param)
            param.display_type_rich = lambda ctx, label=label: label
    for sub in getattr(command, "commands", {}).values():
        plain_help(sub, ctx)


def debug_wanted() -> bool:
    return os.environ.get(DEBUG_ENV, "").strip().lower() in ("1", "true", "yes")


def report_internal_error(exc: BaseException) -> None:
    """One line on stderr: what broke, and where to tell us. Redacted: the message may quote
    a URL with credentials in it."""
    from engine.redact import redact

    what = redact(f"{type(exc).__name__}: {exc}".splitlines()[0])[:300]
    sys.stderr.write(
        f"error: internal error ({what}) — a bug in slo-engine, please report it with the "
        f"command line; rerun with --debug or {DEBUG_ENV}=1 for the traceback\n"
    )


class ContractGroup(TyperGroup):
    """The `slo-engine` command group: plain help labels, and exit 4 on a bug."""

    # Set by the root's --debug (engine/cli.py): let the traceback through.
    debug = False

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        command = super().get_command(ctx, cmd_name)
        if command is not None:
            plain_help(command, ctx)
        return command

    def format_help(self, ctx: Any, formatter: Any) -> None:
        plain_help(self, ctx)
        super().format_help(ctx, formatter)

    def main(self, *args: Any, **kwargs: Any) -> Any:
        self.debug = False
        if not kwargs.get("standalone_mode", True):
            # The caller handles outcomes itself (Click's exceptions included): stay out.
            return super().main(*args, **kwargs)
        try:
            return super().main(*args, **kwargs)
        except Exception as exc:  # Typer handled every expected outcome: this is a bug
            if self.debug or debug_wanted():
                raise
            report_internal_error(exc)
            sys.exit(ExitCode.INTERNAL)
