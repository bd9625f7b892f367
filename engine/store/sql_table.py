"""The base of the store's small SQL-backed tables (idempotency keys, audit log, daily
history, maintenance windows): one transaction factory, and the one place that turns the
`%s` placeholders they are written with into the driver's (`?` for SQLite)."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any


class SQLTable:
    def __init__(
        self, transaction: Callable[[], AbstractContextManager[Any]], placeholder: str = "%s"
    ) -> None:
        self._transaction = transaction
        self._placeholder = placeholder

    def _sql(self, text: str) -> str:
        return text if self._placeholder == "%s" else text.replace("%s", self._placeholder)
