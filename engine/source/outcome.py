"""What happened to one fetch's requests, gathered across the source's worker threads:
how many answered, which atoms failed and why, and whether the backend refused us outright
(after which no further request is sent in that fetch)."""

from __future__ import annotations

import threading
from collections.abc import Sequence

from engine.source.query_plan import Part


class FetchOutcome:
    """What happened to a fetch's requests, gathered across worker threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.succeeded = 0
        self.unreachable = 0
        self.first_unreachable = ""
        self.fatal: str | None = None
        self.errors: dict[int, str] = {}

    def success(self) -> None:
        with self._lock:
            self.succeeded += 1

    def error(self, atom: int, message: str) -> None:
        with self._lock:
            self.errors.setdefault(atom, message)

    def fail(self, batch: Sequence[Part], message: str) -> None:
        with self._lock:
            self.unreachable += 1
            for part in batch:
                for atom in part.answers:
                    self.errors.setdefault(atom, message)

    def unreachable_batch(self, batch: Sequence[Part], message: str, fatal: bool) -> None:
        with self._lock:
            if fatal and self.fatal is None:
                self.fatal = message
            if not self.first_unreachable:
                self.first_unreachable = message
        self.fail(batch, f"Prometheus unavailable: {message}")
