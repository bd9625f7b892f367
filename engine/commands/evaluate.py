"""`slo-engine evaluate`: one evaluation of every SLO at one instant, as a table or JSON.

Exit codes (engine/commands/exit_codes.py, docs/cli.md): 0 the evaluation ran, even if SLOs
are burning or some of their queries failed; 1 the specs are invalid (nothing was
evaluated); 2 usage (a bad flag, a missing path, a step the scrape interval cannot support);
3 Prometheus unreachable or not answering its API for every SLO; 4 internal error.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from engine.commands.app import app
from engine.commands.evaluate_output import evaluations_text
from engine.commands.exit_codes import ExitCode
from engine.commands.options import (
    TIME_HELP,
    BasicAuthPasswordFile,
    BasicAuthUser,
    BearerTokenFile,
    CaBundle,
    ClientCert,
    ClientKey,
    SpecsOption,
    TableFormat,
    TimeoutOption,
    duration_flag,
    prometheus_access,
    time_flag,
)
from engine.evaluation.result import SLOEvaluation
from engine.evaluation.source import SourceUnavailable, StepRates
from engine.spec.durations import Duration
from engine.spec.models import SLO

if TYPE_CHECKING:  # imported inside the functions at run time: the CLI starts without them
    from rich.console import Console

    from engine.commands.evaluate_prefetch import Prefetch
    from engine.evaluation.evaluator import Evaluator
    from engine.evaluation.instant import WindowCounts
    from engine.evaluation.resolution import Resolution
    from engine.spec.load_result import LoadResult

EXIT_OK = ExitCode.OK
EXIT_INVALID_SPECS = ExitCode.FINDINGS
EXIT_USAGE = ExitCode.USAGE
EXIT_UNAVAILABLE = ExitCode.UNAVAILABLE


class _WatchedSource:
    """Remembers whether the source was unreachable, whatever the evaluator does with it."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.unavailable: str | None = None
        self.fetched = False
        # Told what each answered fetch brought (the progress display of a cold fetch).
        self.on_answer: Callable[[str], None] = lambda _: None
        self._answers = 0

    def fetch(self, slos: Sequence[SLO], step: Duration, start: float, end: float) -> StepRates:
        try:
            rates = self.inner.fetch(slos, step, start, end)
        except SourceUnavailable as exc:
            self.unavailable = str(exc)
            raise
        self.fetched = True
        self._answers += 1
        days = (end - start) / 86_400
        self.on_answer(f"{self._answers} fetched: {len(slos)} SLOs × {days:.1f} d at {step}")
        return rates

    def window_counts(
        self, slos: Sequence[SLO], windows: Sequence[Duration], at: float
    ) -> WindowCounts:
        try:
            counts = self.inner.window_counts(slos, windows, at)
        except SourceUnavailable as exc:
            self.unavailable = str(exc)
            raise
        self.fetched = True
        return counts


def _stderr() -> Console:
    """A rich console on stderr, imported only when something is said there: a clean
    `--format json` run never loads rich (≈ 20 ms of start-up)."""
    from rich.console import Console

    return Console(stderr=True)


def _escape(text: str) -> str:
    from rich.markup import escape

    return escape(text)


def _fail(message: str, code: int) -> typer.Exit:
    _stderr().print(f"[red]error:[/red] {message}", highlight=False)
    return typer.Exit(code)


PrometheusUrlOption = Annotated[
    str | None,
    typer.Option(
        "--prometheus-url", metavar="URL", help="Prometheus base URL, e.g. http://prometheus:9090"
    ),
]
OpenMetricsOption = Annotated[
    Path | None,
    typer.Option(
        "--openmetrics",
        metavar="FILE",
        help="Evaluate offline against this OpenMetrics file (the backfill format) "
        "instead of a Prometheus server.",
    ),
]
AtOption = Annotated[
    float | None,
    typer.Option(
        "--at",
        parser=time_flag,
        metavar="TIME",
        help=f"Evaluation time: {TIME_HELP}. Default: now (with --openmetrics: the "
        "file's last sample).",
    ),
]
FormatOption = Annotated[
    TableFormat, typer.Option("--format", help="A table, or the JSON document.")
]
ScrapeIntervalOption = Annotated[
    Duration,
    typer.Option(
        "--scrape-interval",
        parser=duration_flag,
        metavar="DURATION",
        help="How often Prometheus scrapes the SLIs' series. The finest evaluation step "
        "is the smallest step ≥ 2 × this (≥ 1m) dividing every window: 60s gives 2m30s.",
    ),
]


@app.command()
def evaluate(
    specs: SpecsOption,
    prometheus_url: PrometheusUrlOption = None,
    openmetrics: OpenMetricsOption = None,
    at: AtOption = None,
    output_format: FormatOption = TableFormat.table,
    bearer_token_file: BearerTokenFile = None,
    basic_auth_user: BasicAuthUser = None,
    basic_auth_password_file: BasicAuthPasswordFile = None,
    ca_bundle: CaBundle = None,
    client_cert: ClientCert = None,
    client_key: ClientKey = None,
    timeout: TimeoutOption = Duration.parse("10s"),
    scrape_interval: ScrapeIntervalOption = Duration.parse("15s"),
) -> None:
    """Evaluate every SLO once: burn rates per window, error budget remaining, alerts."""
    _check_usage(prometheus_url, openmetrics)
    options: dict[str, Any] = {
        "timeout": timeout.seconds,
        **prometheus_access(
            bearer_token_file,
            basic_auth_user,
            basic_auth_password_file,
            ca_bundle,
            client_cert,
            client_key,
        ),
    }
    # "Now" is when the command started; the first specs' counts are asked while the rest
    # load (engine/commands/evaluate_prefetch.py), at that same instant.
    started = time.time()
    early = _early_source(prometheus_url, options)
    loaded, prefetch = _load_slos(specs, early, scrape_interval, started if at is None else at)
    slos = loaded.slos
    try:
        with ExitStack() as stack:
            if prefetch is not None:
                stack.callback(prefetch.close)
            if early is not None:
                source = early
            else:
                inner, at = _open_source(stack, prometheus_url, openmetrics, at, options)
                source = _WatchedSource(inner)
            source.on_answer = stack.enter_context(_fetch_progress())
            when = started if at is None else at
            resolution, evaluations, sparse = _evaluate_all(
                slos, source, scrape_interval, when, prefetch
            )
    except typer.Exit:
        _exit_on_errors(loaded, settle=True)  # invalid specs say so before anything else
        raise
    _exit_on_errors(loaded, settle=True)
    _warn_sparse(resolution, sparse)
    # The evaluator floors the instant to its finest step; report the instant it used.
    evaluated_at = evaluations[0].evaluated_at if evaluations else when
    _print(evaluations, evaluated_at, output_format)
    if source.unavailable is not None and not source.fetched:
        raise _fail(f"Prometheus is unavailable: {source.unavailable}", EXIT_UNAVAILABLE)


def _may_be_terminal() -> bool:
    """False when rich's `Console.is_terminal` would surely say stderr is no terminal (not
    a tty, no TTY_COMPATIBLE=1, no FORCE_COLOR), without importing rich to ask it."""
    forced = os.environ.get("TTY_COMPATIBLE") == "1" or os.environ.get("FORCE_COLOR")
    return bool(forced) or sys.stderr.isatty()


@contextmanager
def _fetch_progress() -> Iterator[Callable[[str], None]]:
    """A rich progress line on stderr while history is fetched (a cold fetch of 30 days can
    take a while), gone once the table prints; nothing when stderr is not a terminal."""
    if not _may_be_terminal():
        yield lambda _: None
        return
    console = _stderr()
    if not console.is_terminal:
        yield lambda _: None
        return
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    columns = (SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=True) as bar:
        task = bar.add_task("fetching from Prometheus", total=None)
        yield lambda text: bar.update(task, description=f"fetching from Prometheus: {text}")


def _check_usage(prometheus_url: str | None, openmetrics: Path | None) -> None:
    """Exactly one source; otherwise exit 2 (the flags parse their own values)."""
    if (prometheus_url is None) == (openmetrics is None):
        raise _fail("give exactly one of --prometheus-url URL or --openmetrics FILE", EXIT_USAGE)


def _load_slos(
    specs: list[Path], early: _WatchedSource | None, scrape: Duration, when: float
) -> tuple[LoadResult, Prefetch | None]:
    """The specs' SLOs, promtool's parse still running (`_exit_on_errors(settle=True)`
    waits for it once Prometheus has been asked), and with a Prometheus source and enough
    files the first half's counts already being asked: a missing path exits 2, invalid
    specs (or none) exit 1."""
    from engine.commands.evaluate_prefetch import PREFETCH_FROM_FILES, Prefetch
    from engine.spec.loader import SpecLoading

    missing = [str(p) for p in specs if not p.exists()]
    if missing:
        raise _fail("no such file or directory: " + ", ".join(missing), EXIT_USAGE)
    loading = SpecLoading(specs)
    files, prefetch = loading.files, None
    if early is not None and len(files) >= PREFETCH_FROM_FILES:
        first = loading.read(files[: len(files) // 2])
        prefetch = Prefetch(early, first, when, scrape)
        files = files[len(files) // 2 :]
    loading.read(files)
    loaded = loading.finish(defer_promql=True)
    try:
        _exit_on_errors(loaded)
        if not loaded.slos:
            loaded.settle()
            _exit_on_errors(loaded)
            raise _fail("no SLOs found in " + ", ".join(map(str, specs)), EXIT_INVALID_SPECS)
    except typer.Exit:
        if prefetch is not None:
            prefetch.close()
        raise
    return loaded, prefetch


def _early_source(prometheus_url: str | None, options: dict[str, Any]) -> _WatchedSource | None:
    """The Prometheus source, made before the specs load so the prefetch can use it; None
    when there is none or its options fail (then `_open_source` reports, after the specs,
    in the usual order)."""
    if prometheus_url is None:
        return None
    from engine.source.prometheus import PrometheusSource

    try:
        return _WatchedSource(PrometheusSource(prometheus_url, **options))
    except (SourceUnavailable, ValueError, OSError):
        return None


def _exit_on_errors(loaded: LoadResult, settle: bool = False) -> None:
    """Print the specs' errors and exit 1 when there are any (after the deferred checks
    with `settle`): nothing is evaluated from invalid specs."""
    if settle:
        loaded.settle()
    if not loaded.errors:
        return
    err = _stderr()
    for error in loaded.errors:
        err.print(str(error), highlight=False, markup=False)
    err.print(f"[red]{len(loaded.errors)} error(s) in the specs; nothing evaluated[/red]")
    raise typer.Exit(EXIT_INVALID_SPECS)


def _open_source(
    stack: ExitStack,
    prometheus_url: str | None,
    openmetrics: Path | None,
    at: float | None,
    options: dict[str, Any],
) -> tuple[Any, float | None]:
    """The source to read (closed with `stack`) and the instant: an offline file's last
    sample when --at is not given. Unreachable: exit 3; unusable options or file: exit 2."""
    from engine.source.prometheus import PrometheusSource

    try:
        if openmetrics is not None:
            from engine.source.openmetrics_file import OpenMetricsFileSource

            offline = stack.enter_context(OpenMetricsFileSource(openmetrics))
            inner: Any = offline
            if at is None:
                at = offline.latest
        else:
            assert prometheus_url is not None
            inner = PrometheusSource(prometheus_url, **options)
    except SourceUnavailable as exc:
        raise _fail(str(exc), EXIT_UNAVAILABLE) from None
    except (ValueError, OSError) as exc:
        raise _fail(str(exc), EXIT_USAGE) from None
    return inner, at


def _evaluate_all(
    slos: list[SLO],
    source: _WatchedSource,
    scrape: Duration,
    when: float,
    prefetch: Prefetch | None = None,
) -> tuple[Resolution, list[SLOEvaluation], dict[str, float]]:
    """Every SLO once at `when` — grouped SLOs as their instances, discovered first — and
    the SLOs whose fine steps look too sparse. Grouped SLOs without a group are `no_data`
    under their base id; instances follow their base (the spec's order)."""
    from engine.evaluation.groups import in_spec_order, undiscovered_evaluations
    from engine.evaluation.maintenance import touches_maintenance
    from engine.evaluation.resolution import ResolutionError, resolution_for
    from engine.evaluation.timeslices import has_timeslices

    instances, placeholders = _discover_groups(slos, source, when)
    if not instances:  # only grouped SLOs, none with a group yet: nothing to ask for
        try:
            resolution, evaluations, sparse = resolution_for(slos, scrape), [], {}
        except ResolutionError as exc:
            raise _fail(str(exc), EXIT_USAGE) from None
    elif (
        hasattr(source.inner, "window_counts")
        and not touches_maintenance(instances, when)
        and not has_timeslices(instances)
    ):
        # One shot: whole-window instant queries, no cache to fill and throw away (not over
        # a maintenance window, not for time-slice SLOs: only per-step counts can leave a
        # window's events out or judge each slice).
        resolution, evaluations, sparse = _evaluate_once(instances, source, scrape, when, prefetch)
    else:
        evaluator, evaluations = _evaluate_at(instances, source, scrape, when)
        # Fine steps empty where coarse ones have data: the scrape interval is longer
        # than assumed. Say so (the numbers stay what they are: no data is no data).
        resolution, sparse = evaluator.resolution, evaluator.sparse_fine_steps()
    if placeholders:
        instant = evaluations[0].evaluated_at if evaluations else when
        evaluations = in_spec_order(
            [*evaluations, *undiscovered_evaluations(placeholders, instant)], slos
        )
    return resolution, evaluations, sparse


def _discover_groups(
    slos: list[SLO], source: _WatchedSource, when: float
) -> tuple[list[SLO], list[tuple[SLO, str]]]:
    """Grouped SLOs' groups, discovered once at `when` (engine.source.discovery): the SLOs
    and instances to evaluate, and the grouped SLOs without any group. Failed discoveries
    and groups beyond max_groups are warnings; a source that answered no discovery and no
    fetch is "unavailable" (exit 3)."""
    if not any(slo.grouped for slo in slos):
        return slos, []
    from engine.source.discovery import all_unreachable, inventory_once

    inventory, answers = inventory_once(source, slos, when)
    warn = _stderr()
    for base_id, answer in answers.items():
        if answer.error is not None:
            warn.print(
                f"[yellow]warning:[/yellow] {_escape(base_id)}: group discovery failed: "
                f"{_escape(answer.error)}",
                highlight=False,
            )
    for base_id, status in inventory.status().items():
        if status["dropped"]:
            warn.print(
                f"[yellow]warning:[/yellow] {_escape(base_id)}: {status['dropped']} group(s) "
                f"beyond max_groups={status['max_groups']} not evaluated, e.g. "
                f"{_escape(status['dropped_groups'][0])} — raise max_groups or narrow the query",
                highlight=False,
            )
    source.unavailable = source.unavailable or all_unreachable(answers)
    return inventory.instances(), inventory.undiscovered()


def _evaluate_at(
    slos: list[SLO], source: _WatchedSource, scrape: Duration, when: float
) -> tuple[Evaluator, list[SLOEvaluation]]:
    """One evaluation at `when`; a step the scrape interval cannot support: exit 2; a
    source unreachable for every SLO: exit 3."""
    from engine.evaluation.evaluator import Evaluator
    from engine.evaluation.resolution import ResolutionError

    try:
        evaluator = Evaluator(slos, source, scrape_interval=scrape)
    except ResolutionError as exc:
        raise _fail(str(exc), EXIT_USAGE) from None
    try:
        evaluations = evaluator.evaluate(when)
    except SourceUnavailable as exc:
        raise _fail(f"Prometheus is unavailable: {exc}", EXIT_UNAVAILABLE) from None
    return evaluator, evaluations


def _evaluate_once(
    slos: list[SLO],
    source: _WatchedSource,
    scrape: Duration,
    when: float,
    prefetch: Prefetch | None = None,
) -> tuple[Resolution, list[SLOEvaluation], dict[str, float]]:
    """One evaluation at `when` from whole-window counts (engine.evaluation.instant), and
    the SLOs whose fine steps look too sparse for the daemon; exits as `_evaluate_at`."""
    from engine.evaluation.evaluator import SPARSE_FINE_COVERAGE
    from engine.evaluation.instant import evaluate_once, sparse_fine_steps_once
    from engine.evaluation.resolution import ResolutionError
    from engine.source.window_coverage import window_coverage

    # Every window's coverage, from one subquery per window (engine.source.window_coverage).
    coverage: Any = partial(window_coverage, source)
    asked: Any = source
    if prefetch is not None:
        from engine.commands.evaluate_prefetch import PrefetchedSource

        coverage, asked = prefetch.coverage(coverage), PrefetchedSource(source, prefetch)
    try:
        once = evaluate_once(slos, asked, when, scrape_interval=scrape, coverage=coverage)
    except ResolutionError as exc:
        raise _fail(str(exc), EXIT_USAGE) from None
    sparse: dict[str, float] = {}
    if once.events is not None:
        sparse = sparse_fine_steps_once(
            slos, once.events, source, once.resolution, SPARSE_FINE_COVERAGE
        )
    return once.resolution, once.evaluations, sparse


def _warn_sparse(resolution: Resolution, sparse: dict[str, float]) -> None:
    from engine.evaluation.evaluator import sparse_fine_steps_message

    if not sparse:
        return
    warn = _stderr()
    for slo_id, coverage in sparse.items():
        message = sparse_fine_steps_message(slo_id, coverage, resolution, "--scrape-interval")
        warn.print(f"[yellow]warning:[/yellow] {_escape(message)}", highlight=False)


def _print(
    evaluations: list[SLOEvaluation], evaluated_at: float, output_format: TableFormat
) -> None:
    if output_format is TableFormat.json:
        sys.stdout.write(evaluations_text(evaluations, evaluated_at))
    else:
        from rich.console import Console

        from engine.commands.evaluate_table import render_table

        console = Console()
        if not console.is_terminal:
            # Piped into a file or CI log: no terminal width to respect, keep rows on one line.
            console = Console(width=200)
        render_table(evaluations, evaluated_at, console)
