"""The `slo-engine` command line: parse, call the core, render. Each command lives in
`engine/commands/<name>.py` and registers itself on the shared Typer app
(`engine/commands/app.py`)."""

from __future__ import annotations

from engine.commands.app import app


def _register() -> None:
    # Imported for their side effect of adding commands to `app`.
    from engine.commands import (
        backtest,  # noqa: F401
        evaluate,  # noqa: F401
        generate,  # noqa: F401
        incidents,  # noqa: F401
        run,  # noqa: F401
        validate,  # noqa: F401
    )


def main() -> None:
    _register()
    app()
