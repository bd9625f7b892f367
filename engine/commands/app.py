"""The shared Typer app every command module registers itself on."""

from __future__ import annotations

import typer

from engine.commands.contract import ContractGroup

app = typer.Typer(
    name="slo-engine",
    help="SLO evaluation, alerting and incidents for Prometheus.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    cls=ContractGroup,
)
