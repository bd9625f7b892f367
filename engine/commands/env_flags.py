"""`SLO_ENGINE_<FLAG>`: every flag of a command also read from the environment.

For containers and systemd units, where a flag list is awkward and an env file is not.
`--prometheus-url` is `SLO_ENGINE_PROMETHEUS_URL`, `--config` is `SLO_ENGINE_CONFIG`: the
long flag upper-cased, `-` → `_`. A flag on the command line wins over its variable, and
the variable over the config file (the command treats an unset flag as "not given").

Generic on purpose: the command class reads a variable for every option it has, so a flag
added later cannot be forgotten. Repeatable flags (`--specs`, `--webhook`) take a comma- or
whitespace-separated list. An empty variable counts as unset. Secrets stay in files: no flag
takes a secret, only `*_file` paths.
"""

from __future__ import annotations

import os
import re
from typing import Any

import typer
from typer.core import TyperCommand

ENV_PREFIX = "SLO_ENGINE_"
_LIST_SEPARATORS = re.compile(r"[,\s]+")


# Typer ships its own click: options are recognised by what they are, not by class.
def env_name(param: Any) -> str | None:
    """`SLO_ENGINE_<FLAG>` for an option with a long flag; None for anything else."""
    if getattr(param, "param_type_name", None) != "option":
        return None
    flag = next((opt for opt in param.opts if opt.startswith("--")), None)
    if flag is None or flag == "--help":
        return None
    return ENV_PREFIX + flag[2:].upper().replace("-", "_")


class EnvFlagsCommand(TyperCommand):
    """A Typer command whose unset options are filled from `SLO_ENGINE_<FLAG>`."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for param in self.params:
            name = env_name(param)
            if name is not None:
                param.help = f"{param.help or ''} (env {name})".strip()

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        rest = super().parse_args(ctx, args)
        for param in self.params:
            name = env_name(param)
            if name is None or param.name is None:
                continue
            source = ctx.get_parameter_source(param.name)
            if source is not None and source.name != "DEFAULT":
                continue  # given on the command line: the flag wins
            raw = os.environ.get(name, "").strip()
            if not raw:
                continue
            value: Any = [p for p in _LIST_SEPARATORS.split(raw) if p] if param.multiple else raw
            try:
                ctx.params[param.name] = param.process_value(ctx, value)
            except typer.BadParameter as exc:
                raise typer.BadParameter(f"from {name}: {exc.message}", ctx, param) from None
            ctx.set_parameter_source(param.name, type(source).ENVIRONMENT)
        return rest
