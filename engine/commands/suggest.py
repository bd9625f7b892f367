"""`slo-engine suggest`: objectives, latency thresholds and alert policies recommended from
history, proven by replaying it through the backtest's code path (engine/advice/).

Fetches the last `--days` once, judges every candidate objective per period, replays each
candidate and each alternative policy through the daemon's evaluation, scores the policies
against `--labels` (or the incidents the engine itself opened with the current specs), and
prints the advice — or, with `--diff`, the spec edits as a unified diff; `--write` applies
them to native specs, keeping comments and layout.

Exit codes, as `evaluate` and `backtest`: 0 the advice ran; 1 invalid specs or labels (or an
edit that would not validate, left unwritten); 2 it could not run (bad usage, Prometheus
unreachable — never advice from no data).
"""

from __future__ import annotations

import json
import os
import sys
import time
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from engine.commands.app import app
from engine.commands.backtest import (
    _grouped_instances,
    _load_labels,
    _progress_bar,
    _prometheus,
    parse_time,
)

if TYPE_CHECKING:  # imported inside the functions at run time: the CLI starts without them
    from engine.advice.report import Advice
    from engine.backtest.plan import ReplayPlan
    from engine.spec.durations import Duration
    from engine.spec.models import SLO

EXIT_OK = 0
EXIT_INVALID = 1
EXIT_CANNOT_RUN = 2
FORMATS = ("table", "json", "md")


def _fail(message: str, code: int) -> typer.Exit:
    Console(stderr=True).print(f"[red]error:[/red] {message}", highlight=False, markup=True)
    return typer.Exit(code)


@app.command()
def suggest(
    specs: Annotated[
        list[Path], typer.Option("--specs", help="SLO spec file or directory (repeatable).")
    ],
    prometheus_url: Annotated[
        str, typer.Option("--prometheus-url", help="Prometheus base URL holding the history.")
    ],
    days: Annotated[int, typer.Option(help="Days of history to judge and replay.")] = 90,
    end: Annotated[
        str | None, typer.Option(help="End of the history: Unix seconds or RFC 3339 (now).")
    ] = None,
    step: Annotated[
        str,
        typer.Option(help="Resolution of the history and the alert replays (divides windows)."),
    ] = "5m",
    scrape_interval: Annotated[
        str, typer.Option(help="How often Prometheus scraped the SLIs: a step needs 2 samples.")
    ] = "15s",
    output_format: Annotated[str, typer.Option("--format", help="table, json or md")] = "table",
    labels: Annotated[
        Path | None,
        typer.Option(
            help="Known incidents (the backtest format): policies are scored against them "
            "instead of the incidents the engine opens with the current specs."
        ),
    ] = None,
    latency_target: Annotated[
        str | None,
        typer.Option(
            help="Share of requests (percent) a latency threshold must hold (the SLO's objective)."
        ),
    ] = None,
    write: Annotated[
        bool, typer.Option("--write", help="Edit native specs in place with the advice.")
    ] = False,
    diff: Annotated[
        bool, typer.Option("--diff", help="Print the spec edits as a unified diff instead.")
    ] = False,
    bearer_token_file: Annotated[
        Path | None, typer.Option(help="File holding a bearer token for Prometheus.")
    ] = None,
    timeout: Annotated[float, typer.Option(help="Per-request timeout in seconds.")] = 30.0,
    workers: Annotated[
        int | None, typer.Option(help="Processes replaying SLO groups (default: CPUs, ≤ 4).")
    ] = None,
) -> None:
    """Recommend objectives, latency thresholds and alert policies from history."""
    if output_format not in FORMATS:
        raise _fail(f"--format must be table, json or md, not {output_format!r}", EXIT_CANNOT_RUN)
    at, step_d, scrape, target = _parse(end, step, scrape_interval, latency_target)
    slos = _load_slos(specs)
    known = _load_labels(labels) if labels is not None else None
    plan = _plan(slos, at, days, step_d, scrape)
    n_workers = workers if workers is not None else min(os.cpu_count() or 1, 4)
    stderr = Console(stderr=True)
    with _progress_bar(stderr.is_terminal) as progress:
        advice = _run(
            prometheus_url,
            timeout,
            bearer_token_file,
            slos,
            plan,
            days,
            known,
            target,
            n_workers,
            progress,
        )
    code = _patch(advice, write, diff) if (write or diff) else EXIT_OK
    if not diff:
        _output(advice, output_format)
    raise typer.Exit(code)


def _parse(
    end: str | None, step: str, scrape_interval: str, latency_target: str | None
) -> tuple[float, Duration, Duration, Decimal | None]:
    """--end, --step, --scrape-interval, --latency-target; unreadable: exit 2."""
    from engine.spec.durations import Duration, DurationError

    try:
        at = time.time() if end is None else parse_time(end)
        step_d, scrape = Duration.parse(step), Duration.parse(scrape_interval)
        target = None if latency_target is None else Decimal(latency_target.rstrip("%"))
    except (ValueError, DurationError, InvalidOperation) as exc:
        raise _fail(str(exc) or f"{latency_target!r} is not a number", EXIT_CANNOT_RUN) from None
    if target is not None and not 0 < target < 100:
        raise _fail("--latency-target is a percentage: 0 < target < 100", EXIT_CANNOT_RUN)
    return at, step_d, scrape, target


def _load_slos(specs: list[Path]) -> list[SLO]:
    """The SLOs of `specs`; invalid specs or none at all: exit 1."""
    from engine.spec.loader import load_specs

    loaded = load_specs(specs)
    if loaded.errors:
        err = Console(stderr=True)
        for error in loaded.errors:
            err.print(str(error), highlight=False, markup=False)
        err.print(f"[red]{len(loaded.errors)} error(s) in the specs; nothing analysed[/red]")
        raise typer.Exit(EXIT_INVALID)
    if not loaded.slos:
        raise _fail("no SLOs found in " + ", ".join(map(str, specs)), EXIT_INVALID)
    return loaded.slos


def _plan(slos: list[SLO], at: float, days: int, step: Duration, scrape: Duration) -> ReplayPlan:
    from engine.advice.history import history_plan
    from engine.evaluation.resolution import ResolutionError, check_step

    try:
        check_step(step, scrape, slos)
        return history_plan(slos, at, days, step)
    except (ResolutionError, ValueError) as exc:
        raise _fail(str(exc), EXIT_CANNOT_RUN) from None


def _run(
    url: str,
    timeout: float,
    token: Path | None,
    slos: list[SLO],
    plan: ReplayPlan,
    days: int,
    known: list[Any] | None,
    target: Decimal | None,
    workers: int,
    progress: Any,
) -> Advice:
    """Discover grouped SLOs' groups and fetch (Prometheus unavailable: exit 2), replay the
    current specs as `backtest` does when there are no labels, and advise — on every
    spec-level SLO and on each group of a grouped one."""
    from engine.advice.advise import advise
    from engine.advice.history import latency_shares, rows_of, with_instances
    from engine.backtest.plan import fetch_history
    from engine.backtest.replay import replay
    from engine.evaluation.source import SourceUnavailable

    source = _prometheus(url, timeout, token)
    # What the daemon (and `backtest`) evaluates: ungrouped SLOs and grouped SLOs' groups.
    evaluated = _grouped_instances(source, slos, plan)
    rows = with_instances(slos, evaluated)
    try:
        rates = fetch_history(source, rows, plan, progress)
        latency = latency_shares(source, source, slos, plan)  # type: ignore[arg-type]
    except SourceUnavailable as exc:
        raise _fail(f"Prometheus is unavailable: {exc}", EXIT_CANNOT_RUN) from None
    reference = None
    if known is None:
        history = rows_of(rates, rows, evaluated)
        reference = replay(evaluated, history, plan, progress=progress, workers=workers)
    return advise(
        rows,
        rates,
        plan,
        days=days,
        labels=known,
        reference=reference,
        latency=latency,
        latency_target=target,
        workers=workers,
        progress=progress,
    )


def _patch(advice: Advice, write: bool, diff: bool) -> int:
    """--diff: the unified diff on stdout; --write: native files edited in place. Notes and
    foreign files' diffs go to stderr (unwrapped: paths stay whole). Exit 1 when an edit
    would not validate."""
    from engine.advice.patch import check_patches, plan_patches, write_patches

    patches = plan_patches(advice)
    check_patches(patches, advice)
    for patch in patches:
        if diff and patch.changed:
            sys.stdout.write(patch.diff())
        for note in patch.notes:
            sys.stderr.write(f"note: {patch.path}: {note}\n")
        if write and patch.changed and not patch.native:
            sys.stderr.write(
                f"not written: {patch.path} is not a native slo-engine spec (it belongs to "
                "the tool that reads it); apply this by hand:\n" + patch.diff()
            )
    if write:
        for path in write_patches(patches):
            sys.stderr.write(f"wrote {path}\n")
    if not any(p.changed for p in patches):
        sys.stderr.write("no spec changes to suggest\n")
    return EXIT_INVALID if any(not p.valid for p in patches) else EXIT_OK


def _output(advice: Advice, output_format: str) -> None:
    from engine.advice.render import markdown

    if output_format == "json":
        sys.stdout.write(json.dumps(advice.to_json(), indent=2) + "\n")
    elif output_format == "md":
        sys.stdout.write(markdown(advice) + "\n")
    else:
        console = Console() if Console().is_terminal else Console(width=200)
        _tables(advice, console)


def _table(title: str, head: tuple[str, ...], rows: list[tuple[str, ...]]) -> Table:
    table = Table(title=title, header_style="bold", title_justify="left")
    for name in head:
        table.add_column(name, overflow="fold")
    for row in rows:
        table.add_row(*row)
    return table


def _tables(advice: Advice, console: Console) -> None:
    from engine.advice import render
    from engine.advice.latency import LatencyAdvice

    console.print(
        _table(
            render.title(advice), render.SUMMARY_HEAD, [render.summary_row(s) for s in advice.slos]
        )
    )
    if advice.fleet is not None:
        name = f"Alert policies, all SLOs — recommended: {advice.fleet.best.policy} ({advice.fleet.reason})"
        console.print(_table(name, render.POLICY_HEAD, render.policy_rows(advice.fleet)))
    for item in advice.slos:
        if item.ladder is not None:
            console.print(
                _table(
                    f"{item.slo.id}: candidate objectives",
                    render.LADDER_HEAD,
                    render.ladder_rows(item),
                )
            )
        if isinstance(item.latency, LatencyAdvice):
            console.print(
                _table(
                    f"{item.slo.id}: latency thresholds — {item.latency.reason}",
                    render.LATENCY_HEAD,
                    render.latency_rows(item.latency),
                )
            )
        if item.policy is not None and item.policy_change is not None:
            console.print(
                _table(
                    f"{item.slo.id}: alert policies — {item.policy.reason}",
                    render.POLICY_HEAD,
                    render.policy_rows(item.policy),
                )
            )
