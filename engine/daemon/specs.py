"""Spec hot reload: notice when the spec files change, reload them with the normal loader,
and hand a valid set to the evaluator and the anomaly step (an invalid one is reported and
the last good set kept; left invalid past `invalid_specs_grace`, it becomes a warning
incident — `InvalidSpecsTimer`).

Polling the files' (path, mtime, size) each cycle costs a few `stat` calls and needs no
inotify, works on network and container volumes, and catches added and deleted files too.
A Kubernetes ConfigMap update swaps a symlink; `stat` follows it, so that is seen as well.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from opentelemetry import trace
from opentelemetry.trace import Status, StatusCode

from engine.alerting.cycle import InvalidSpecs
from engine.daemon.anomaly import DaemonAnomalies
from engine.daemon.metrics import DaemonMetrics
from engine.evaluation.evaluator import Evaluator, sparse_fine_steps_message
from engine.evaluation.resolution import ResolutionError
from engine.spec.durations import Duration
from engine.spec.loader import LoadResult, load_specs, spec_files
from engine.spec.models import SLO

if TYPE_CHECKING:
    from engine.daemon.groups import DaemonGroups

# These lines logged under the Runtime's name before it was split; operators filter on it.
log = logging.getLogger("engine.daemon.runtime")

Signature = tuple[tuple[str, int, int], ...]


class SpecsInvalid(RuntimeError):
    """The specs at start-up are invalid: there is no last good set to run on."""

    def __init__(self, errors: Sequence[str]) -> None:
        super().__init__("\n".join(errors))
        self.errors = list(errors)


class SpecWatcher:
    def __init__(
        self,
        paths: Sequence[Path],
        check: Callable[[Sequence[SLO]], list[str]] | None = None,
    ) -> None:
        self.paths = [Path(p) for p in paths]
        # Rules the spec files cannot check alone (e.g. datasources named in the config).
        self._check = check
        self._seen: Signature | None = None

    def signature(self) -> Signature:
        files, _ = spec_files(self.paths)
        found = []
        for path in files:
            try:
                st = os.stat(path)
            except OSError:
                continue
            found.append((str(path), st.st_mtime_ns, st.st_size))
        return tuple(found)

    def changed(self) -> bool:
        """True when the files differ from what the last `load()` saw."""
        return self.signature() != self._seen

    def load(self) -> LoadResult:
        """Load the specs; remember what was loaded, valid or not, so an invalid set is
        reported once per change rather than every cycle. The files count as seen only once
        loaded: a load that raises is tried again next cycle, never forgotten."""
        signature = self.signature()  # before reading: a change while loading is seen next
        loaded = load_specs(self.paths)
        self._seen = signature
        return loaded

    def problems(self, loaded: LoadResult) -> list[str]:
        """Why `loaded` cannot be run: its spec errors, else the daemon's own checks."""
        if loaded.errors:
            return [str(e) for e in loaded.errors]
        if not loaded.slos:
            return [f"no SLOs found in {', '.join(map(str, self.paths))}"]
        return [] if self._check is None else self._check(loaded.slos)


class InvalidSpecsTimer:
    """Since when the spec files have been invalid, and whether for longer than the grace.

    A rejected reload already shows in `/readyz`, `slo_engine_specs_valid` and the logs —
    places someone has to look at. The daemon keeps evaluating the last good set, so every
    SLO edit since is silently not in effect; past the grace (a person mid-edit, a
    ConfigMap half-synced, is given time) it raises its own ticket, so it is noticed.
    The clock is the cycle's `now`, handed in: tests drive it like the daemon does.
    """

    def __init__(self, grace: Duration) -> None:
        self._grace = grace
        self.since: float | None = None

    def observe(self, now: float, errors: Sequence[str]) -> InvalidSpecs | None:
        """`errors`: why the current files are rejected (empty: the specs are valid)."""
        if not errors:
            self.since = None
            return None
        if self.since is None:
            self.since = now
        if now - self.since < self._grace.seconds:
            return None
        return InvalidSpecs(self.since, errors[0], len(errors), str(self._grace))


def load_startup_specs(watcher: SpecWatcher) -> LoadResult:
    """The first load: without a last good set to fall back on, invalid specs are fatal."""
    loaded = watcher.load()
    problems = watcher.problems(loaded)
    if problems:
        raise SpecsInvalid(problems)
    for warning in loaded.warnings:
        log.warning("%s", warning)
    return loaded


class DaemonSpecs:
    """The specs a running daemon evaluates: reloads when the files change, the status the
    API reports (`status()`), and the sampling check of the evaluation steps."""

    def __init__(
        self,
        watcher: SpecWatcher,
        loaded: LoadResult,
        now: float,
        evaluator: Evaluator,
        anomalies: DaemonAnomalies,
        metrics: DaemonMetrics,
        tracer: trace.Tracer,
        groups: DaemonGroups | None = None,
    ) -> None:
        self._watcher = watcher
        # Grouped SLOs' discovery: it hands their instances to the evaluator on a reload.
        self.groups = groups
        self._evaluator = evaluator
        self._anomalies = anomalies
        self._metrics = metrics
        self._tracer = tracer
        self._status: dict[str, Any] = {
            "loaded_at": now,
            "checked_at": now,
            "slos": len(loaded.slos),
            "files": len(loaded.files),
            "last_error": None,
            "errors": [],
        }
        # SLOs whose fine steps are mostly empty (scrape interval longer than assumed),
        # each logged once until it recovers; see `check_sampling`.
        self._sparse_fine: dict[str, float] = {}
        self._status["sampling"] = self._sampling_status()
        self._metrics.fine_step_seconds.set(self._evaluator.resolution.fine_step.seconds)

    def status(self) -> dict[str, Any]:
        status = dict(self._status, errors=list(self._status["errors"]))
        groups = {} if self.groups is None else self.groups.status()
        if groups:  # grouped SLOs: their groups, vanished and dropped ones
            status["groups"] = groups
        return status

    @property
    def last_error(self) -> str | None:
        return self._status["last_error"]

    @property
    def errors(self) -> list[str]:
        """Why the files on disk are rejected (empty while the loaded set is current)."""
        return list(self._status["errors"])

    def reload_if_changed(self, now: float) -> list[str]:
        """Reload the specs when their files changed; the errors of a rejected set."""
        if not self._watcher.changed():
            return []
        with self._tracer.start_as_current_span("specs.reload") as span:
            self._status["checked_at"] = now
            try:
                loaded = self._watcher.load()
                errors = self._watcher.problems(loaded)
            except Exception as exc:  # a loader bug: report it like invalid specs
                log.exception("spec reload failed")
                loaded, errors = LoadResult(), [f"spec reload failed: {type(exc).__name__}"]
            if errors:
                self._rejected(errors, span)
                for error in errors:
                    log.error("spec reload rejected, keeping the last good specs: %s", error)
                return errors
            try:
                if self.groups is None:
                    self._evaluator.set_slos(loaded.slos)
                else:  # instances of grouped SLOs, rediscovered (anomalies included)
                    self.groups.set_slos(loaded.slos, now)
            except ResolutionError as exc:
                # Valid specs whose windows cannot be measured at the scrape interval: same
                # treatment as invalid specs — keep evaluating the last good set.
                self._rejected([str(exc)], span)
                log.error("spec reload rejected, keeping the last good specs: %s", exc)
                return [str(exc)]
            self._status["sampling"] = self._sampling_status()
            self._metrics.fine_step_seconds.set(self._evaluator.resolution.fine_step.seconds)
            if self.groups is None:
                self._anomalies.set_slos(loaded.slos)
            self._status.update(
                loaded_at=now,
                slos=len(loaded.slos),
                files=len(loaded.files),
                last_error=None,
                errors=[],
            )
            self._metrics.spec_reloads.inc()
            self._metrics.specs_valid.set(1)
            self._metrics.slos.set(len(loaded.slos))
            log.info("specs reloaded: %d SLOs from %d files", len(loaded.slos), len(loaded.files))
            return []

    def _rejected(self, errors: list[str], span: trace.Span) -> None:
        self._status["last_error"] = errors[0] + (
            f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        )
        self._status["errors"] = errors
        self._metrics.spec_reload_errors.inc()
        self._metrics.specs_valid.set(0)
        span.set_status(Status(StatusCode.ERROR, errors[0]))

    # -- sampling --------------------------------------------------------------------------

    def _sampling_status(self) -> dict[str, Any]:
        return {
            **self._evaluator.resolution.describe(),
            "sparse_fine_steps": {k: round(v, 3) for k, v in sorted(self._sparse_fine.items())},
        }

    def check_sampling(self) -> None:
        """The safety net for a wrong `scrape_interval`: fine steps without data where the
        coarse tier has data. Reported (log once per SLO, metric, spec status), never turned
        into numbers: those windows stay "no data". Not a readiness failure — the daemon
        still evaluates everything it can, and taking it out of service would blind more."""
        sparse = self._evaluator.sparse_fine_steps()
        for slo_id in sorted(sparse.keys() - self._sparse_fine.keys()):
            log.warning(
                "%s",
                sparse_fine_steps_message(
                    slo_id, sparse[slo_id], self._evaluator.resolution, "`scrape_interval:`"
                ),
            )
        for slo_id in sorted(self._sparse_fine.keys() - sparse.keys()):
            log.info("%s: its fine evaluation steps have data again", slo_id)
        self._sparse_fine = sparse
        self._metrics.sparse_fine_steps(sparse)
        self._status["sampling"] = self._sampling_status()
