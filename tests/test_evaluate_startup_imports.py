"""`slo-engine evaluate --format json` starts without rich (the table, warnings and the
progress line import it when they are shown), and the progress line's cheap "surely no
terminal" test agrees with rich's own."""

from __future__ import annotations

import io
import subprocess
import sys

import pytest

from engine.commands import evaluate


def test_the_evaluate_command_imports_no_rich() -> None:
    code = (
        "import sys, engine.cli, engine.commands.evaluate, engine.commands.evaluate_output;"
        "print(sorted(m for m in sys.modules if m == 'rich' or m.startswith('rich.')))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"


@pytest.mark.parametrize(
    ("environ", "tty"),
    [
        ({}, False),
        ({}, True),
        ({"FORCE_COLOR": "1"}, False),
        ({"FORCE_COLOR": ""}, False),
        ({"TTY_COMPATIBLE": "1"}, False),
        ({"TTY_COMPATIBLE": "0"}, True),
        ({"TTY_COMPATIBLE": "2"}, False),
    ],
)
def test_may_be_terminal_never_hides_what_rich_would_show(
    monkeypatch: pytest.MonkeyPatch, environ: dict[str, str], tty: bool
) -> None:
    from rich.console import Console

    class Stream(io.StringIO):
        def isatty(self) -> bool:
            return tty

    for name in ("FORCE_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE", "JUPYTER_COLUMNS"):
        monkeypatch.delenv(name, raising=False)
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(sys, "stderr", Stream())
    rich_says = Console(stderr=True).is_terminal
    # A False here skips rich altogether, so it must never be wrong; True merely asks rich.
    if not evaluate._may_be_terminal():
        assert rich_says is False
    assert evaluate._may_be_terminal() == (
        tty or bool(environ.get("FORCE_COLOR")) or (environ.get("TTY_COMPATIBLE") == "1")
    )
