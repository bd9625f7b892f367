"""The log flags' choices as enums, so `--help` lists them and a typo is refused by the
parser (with the choices) before anything starts. Kept apart from the commands that use
them: the root callback (engine/cli.py) reads `--log-format` without importing `run`.
StrEnum: `str(choice)` is the value, as the config and SLO_ENGINE_<FLAG> spell it."""

from __future__ import annotations

from enum import StrEnum


class LogLevel(StrEnum):
    debug = "debug"
    info = "info"
    warning = "warning"
    error = "error"


class LogFormatChoice(StrEnum):
    text = "text"
    json = "json"
    logfmt = "logfmt"
