"""What one `load_specs` call found: the specs that passed, and every problem with its place."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from engine.spec.errors import SpecError
from engine.spec.models import SLO, ServiceSpec


@dataclass
class LoadResult:
    services: list[ServiceSpec] = field(default_factory=list)
    slos: list[SLO] = field(default_factory=list)
    errors: list[SpecError] = field(default_factory=list)
    warnings: list[SpecError] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)
    # False when promtool was not found and only bracket/quote balance was checked.
    promql_parsed: bool = True
    # Checks still running (load_specs(..., defer_promql=True)): `settle` waits for them.
    pending: list[Callable[[], object]] = field(default_factory=list)

    def settle(self) -> None:
        """Wait for the deferred checks and add what they found to `errors` (sorted)."""
        while self.pending:
            self.pending.pop(0)()
        self.errors.sort()

    @property
    def ok(self) -> bool:
        return not self.errors

    @property
    def problems(self) -> list[SpecError]:
        """Errors and warnings together, sorted by file and position."""
        return sorted([*self.errors, *self.warnings])
