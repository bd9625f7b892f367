"""`slo-engine suggest`: objectives, latency thresholds and alert policies recommended from
history, proven by replaying it through the backtest's code path (engine/advice/).

Fetches the last `--days` once, judges every candidate objective per period, replays each
candidate and each alternative policy through the daemon's evaluation, scores the policies
against `--labels` (or the incidents the engine itself opened with the current specs), and
prints the advice — or, with `--diff`, the spec edits as a unified diff; `--write` applies
them to native specs, keeping comments and layout.

Exit codes, as `evaluate` and `backtest` (docs/cli.md): 0 the advice ran; 1 invalid specs or
labels (or an edit that would not validate, left unwritten); 2 usage; 3 Prometheus
unreachable or not answering its API — never advice from no data; 4 internal error.
"""

from __future__ import annotations

import json
import os
import sys
import time
from decimal import Decimal, InvalidOperation
from enum import StrEnum
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
)
from engine.commands.exit_codes import ExitCode
from engine.commands.options import (
    TIME_HELP,
    BasicAuthPasswordFile,
    BasicAuthUser,
    BearerTokenFile,
    CaBundle,
    ClientCert,
    ClientKey,
    PrometheusUrlOption,
    SpecsOption,
    TimeoutOption,
    WorkersOption,
    duration_flag,
    prometheus_access,
    time_flag,
)
from engine.spec.durations import Duration

if TYPE_CHECKING:  # imported inside the functions at run time: the CLI starts without them
    from engine.advice.report import Advice
    from engine.backtest.plan import ReplayPlan
    from engine.spec.models import SLO

EXIT_OK = ExitCode.OK
EXIT_INVALID = ExitCode.FINDINGS
EXIT_USAGE = ExitCode.USAGE
EXIT_UNAVAILABLE = ExitCode.UNAVAILABLE


class AdviceFormat(StrEnum):
    table = "table"
    json = "json"
    md = "md"


def _fail(message: str, code: int) -> typer.Exit:
    Console(stderr=True).print(f"[red]error:[/red] {message}", highlight=False, markup=True)
    return typer.Exit(code)


DaysOption = Annotated[
    int, typer.Option(metavar="DAYS", help="Days of history to judge and replay.")
]
EndOption = Annotated[
    float | None,
    typer.Option(parser=time_flag, metavar="TIME", help=f"End of the history: {TIME_HELP} [now]."),
]
StepOption = Annotated[
    Duration,
    typer.Option(
        parser=duration_flag,
        metavar="DURATION",
        help="Resolution of the history and the alert replays (divides windows).",
    ),
]
ScrapeIntervalOption = Annotated[
    Duration,
    typer.Option(
        parser=duration_flag,
        metavar="DURATION",
        help="How often Prometheus scraped the SLIs: a step needs 2 samples.",
    ),
]
FormatOption = Annotated[
    AdviceFormat, typer.Option("--format", help="Tables, the JSON document, or Markdown.")
]
LabelsOption = Annotated[
    Path | None,
    typer.Option(
        metavar="FILE",
        help="Known incidents (the backtest format): policies are scored against them "
        "instead of the incidents the engine opens with the current specs.",
    ),
]
LatencyTargetOption = Annotated[
    str | None,
    typer.Option(
        metavar="PERCENT",
        help="Share of requests (percent) a latency threshold must hold (the SLO's objective).",
    ),
]
WriteOption = Annotated[
    bool, typer.Option("--write", help="Edit native specs in place with the advice.")
]
DiffOption = Annotated[
    bool, typer.Option("--diff", help="Print the spec edits as a unified diff instead.")
]


@app.command()
def suggest(
    specs: SpecsOption,
    prometheus_url: PrometheusUrlOption,
    days: DaysOption = 90,
    end: EndOption = None,
    step: StepOption = Duration.parse("5m"),
    scrape_interval: ScrapeIntervalOption = Duration.parse("15s"),
    output_format: FormatOption = AdviceFormat.table,
    labels: LabelsOption = None,
    latency_target: LatencyTargetOption = None,
    write: WriteOption = False,
    diff: DiffOption = False,
    bearer_token_file: BearerTokenFile = None,
    basic_auth_user: BasicAuthUser = None,
    basic_auth_password_file: BasicAuthPasswordFile = None,
    ca_bundle: CaBundle = None,
    client_cert: ClientCert = None,
    client_key: ClientKey = None,
    timeout: TimeoutOption = Duration.parse("30s"),
    workers: WorkersOption = None,
) -> None:
    """Recommend objectives, latency thresholds and alert policies from history."""
    target = _latency_target(latency_target)
    slos = _load_slos(specs)
    known = _load_labels(labels) if labels is not None else None
    plan = _plan(slos, time.time() if end is None else end, days, step, scrape_interval)
    n_workers = workers if workers is not None else min(os.cpu_count() or 1, 4)
    stderr = Console(stderr=True)
    access = prometheus_access(
        bearer_token_file,
        basic_auth_user,
        basic_auth_password_file,
        ca_bundle,
        client_cert,
        client_key,
    )
    with _progress_bar(stderr.is_terminal) as progress:
        advice = _run(
            _prometheus(prometheus_url, timeout, access),
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


def _latency_target(latency_target: str | None) -> Decimal | None:
    """--latency-target as a percentage; unreadable or out of range: exit 2."""
    if latency_target is None:
        return None
    try:
        target = Decimal(latency_target.rstrip("%"))
    except InvalidOperation:
        raise _fail(f"--latency-target {latency_target!r} is not a number", EXIT_USAGE) from None
    if not 0 < target < 100:
        raise _fail("--latency-target is a percentage: 0 < target < 100", EXIT_USAGE)
    return target


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
        raise _fail(str(exc), EXIT_USAGE) from None


def _run(
    source: Any,
    slos: list[SLO],
    plan: ReplayPlan,
    days: int,
    known: list[Any] | None,
    target: Decimal | None,
    workers: int,
    progress: Any,
) -> Advice:
    """Discover grouped SLOs' groups and fetch (Prometheus unavailable: exit 3), replay the
    current specs as `backtest` does when there are no labels, and advise — on every
    spec-level SLO and on each group of a grouped one."""
    from engine.advice.advise import advise
    from engine.advice.history import latency_shares, rows_of, with_instances
    from engine.backtest.plan import fetch_history
    from engine.backtest.replay import replay
    from engine.evaluation.source import SourceUnavailable

    # What the daemon (and `backtest`) evaluates: ungrouped SLOs and grouped SLOs' groups.
    evaluated = _grouped_instances(source, slos, plan)
    rows = with_instances(slos, evaluated)
    try:
        rates = fetch_history(source, rows, plan, progress)
        latency = latency_shares(source, source, slos, plan)  # type: ignore[arg-type]
    except SourceUnavailable as exc:
        raise _fail(f"Prometheus is unavailable: {exc}", EXIT_UNAVAILABLE) from None
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


def _output(advice: Advice, output_format: AdviceFormat) -> None:
    from engine.advice.render import markdown

    if output_format is AdviceFormat.json:
        sys.stdout.write(json.dumps(advice.to_json(), indent=2) + "\n")
    elif output_format is AdviceFormat.md:
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
