"""The `slo-engine` command line: parse, call the core, render. Each command lives in
`engine/commands/<name>.py` and registers itself on the shared Typer app
(`engine/commands/app.py`).

Start-up matters (`validate` runs in pre-commit hooks, `evaluate` in CI jobs), so `main`
imports only the module of the command being run; `--help` and unknown names load them all.
"""

from __future__ import annotations

import contextlib
import gc
import importlib
import logging
import os
import sys
from typing import Annotated

import typer

from engine.commands.app import app
from engine.commands.log_choices import LogFormatChoice

COMMANDS = (
    "backtest",
    "evaluate",
    "gate",
    "generate",
    "incidents",
    "report",
    "run",
    "suggest",
    "validate",
)


def _show_version(value: bool) -> None:
    if value:
        from engine.telemetry import build_info

        info = build_info()
        typer.echo(f"slo-engine {info['version']} (python {info['python_version']})")
        raise typer.Exit()


@app.callback()
def _options(
    ctx: typer.Context,
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_show_version, is_eager=True, help="Print the version; exit."
        ),
    ] = False,
    log_format: Annotated[
        LogFormatChoice | None,
        typer.Option("--log-format", help="Log lines on stderr (UTC, trace ids); any command."),
    ] = None,
    debug: Annotated[
        bool,
        typer.Option(
            "--debug", help="Show the traceback of an internal error (exit 4) instead of one line."
        ),
    ] = False,
) -> None:
    if debug:
        ctx.find_root().command.debug = True  # type: ignore[attr-defined]
    from engine.logs import choose_format, configure_logging

    chosen = None if log_format is None else log_format.value
    choose_format(chosen)  # type: ignore[arg-type]
    if chosen is not None:
        configure_logging(log_format=chosen)  # type: ignore[arg-type]


def _register() -> None:
    # Imported for their side effect of adding commands to `app`.
    from engine.commands import (
        backtest,  # noqa: F401
        evaluate,  # noqa: F401
        gate,  # noqa: F401
        generate,  # noqa: F401
        incidents,  # noqa: F401
        report,  # noqa: F401
        run,  # noqa: F401
        suggest,  # noqa: F401
        validate,  # noqa: F401
    )


def main() -> None:
    # Collect cycles every 100,000 allocations rather than Python's default 700: loading
    # 1,000 spec files allocates millions of objects, few of them cyclic, and the default
    # spent 0.15 s of a 1.9 s one-shot `evaluate` scanning them. Memory is still freed by
    # reference counting; the daemon keeps collecting, less often.
    gc.set_threshold(100_000, 50, 100)
    name = sys.argv[1] if len(sys.argv) > 1 else None
    if name not in COMMANDS:
        _register()
        app()
        return
    importlib.import_module(f"engine.commands.{name}")
    import typer.main

    # A group even with one command registered (Typer would make a lone command the
    # whole program, and `slo-engine validate x` would read `validate` as an argument).
    try:
        typer.main.get_group(app)()
    except SystemExit as done:
        if name in QUICK_EXIT and (done.code is None or isinstance(done.code, int)):
            _exit_now(done.code or 0)
        raise


# One-shot commands that leave nothing behind once their output is written: they exit
# without tearing the interpreter down. Freeing 1,000 specs' objects and every module one
# by one took 0.08 s of a 1.7 s `evaluate`; the process's memory goes back to the system
# at once anyway. The daemon (`run`) and the rest exit normally (atexit: OTLP flushes).
QUICK_EXIT = frozenset({"evaluate", "validate"})


def _exit_now(code: int) -> None:
    logging.shutdown()  # flush log handlers, as interpreter exit would
    for stream in (sys.stdout, sys.stderr):
        # A reader that went away (`| head`): nothing left to say to it.
        with contextlib.suppress(OSError):
            stream.flush()
    os._exit(code)
