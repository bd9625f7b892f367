"""`slo-engine backtest`: what would the policy have done over this history?

Fetches history in bulk, replays it through the daemon's evaluation, low-traffic guard,
anomaly detection and incident engine on a simulated clock (nothing is sent), and prints the
alerts and incidents it would have produced — a table, or the documented JSON contract.

Exit codes: 0 the replay ran; 1 invalid specs or labels; 2 it could not run (bad usage,
Prometheus unreachable).
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table

from engine.commands.app import app

if TYPE_CHECKING:  # imported inside the functions at run time: the CLI starts without them
    from engine.backtest.plan import ReplayPlan
    from engine.backtest.result import ReplayResult
    from engine.evaluation.source import EventSource
    from engine.incidents.config import IncidentConfig
    from engine.spec.durations import Duration
    from engine.spec.models import SLO

EXIT_OK = 0
EXIT_INVALID = 1
EXIT_CANNOT_RUN = 2

_PHASES = {
    "fetch": "fetching history",
    "evaluate": "evaluating",
    "replay": "replaying",
    "report": "writing the report",
}


def parse_time(text: str) -> float:
    """Unix seconds or RFC 3339 with a zone (2024-01-03T10:00:00Z)."""
    try:
        return float(text)
    except ValueError:
        pass
    try:
        parsed = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(
            f"{text!r} is not a time — use Unix seconds or RFC 3339 like 2024-01-03T10:00:00Z"
        ) from None
    if parsed.tzinfo is None:
        raise ValueError(f"{text!r} has no time zone — add Z or +00:00")
    return parsed.timestamp()


def _fail(message: str, code: int) -> typer.Exit:
    Console(stderr=True).print(f"[red]error:[/red] {message}", highlight=False, markup=True)
    return typer.Exit(code)


@contextmanager
def _progress_bar(enabled: bool) -> Iterator[Any]:
    """A rich progress bar on stderr, or a no-op callback."""
    if not enabled:
        yield lambda phase, done, total: None
        return
    tasks: dict[str, TaskID] = {}
    with Progress(
        TextColumn("{task.description:<18}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        transient=False,
    ) as bar:

        def update(phase: str, done: int, total: int) -> None:
            if phase not in tasks:
                tasks[phase] = bar.add_task(_PHASES.get(phase, phase), total=total)
            bar.update(tasks[phase], completed=done, total=total)

        yield update


def _ts(value: float | None) -> str:
    if value is None:
        return "—"
    return time.strftime("%Y-%m-%d %H:%M", time.gmtime(value))


def render_table(result: Any, scores: list[Any] | None, console: Console) -> None:
    summary = result.summary()
    head = Table(
        title=f"Backtest {_ts(result.plan.start)} → {_ts(result.plan.end)} UTC "
        f"(step {result.plan.step})",
        header_style="bold",
    )
    for name in ("pages", "tickets", "anomalies", "incidents"):
        head.add_column(name, justify="right")
    head.add_row(*(str(summary[k]) for k in ("pages", "tickets", "anomalies", "incidents")))
    console.print(head)

    incidents = Table(title="Incidents that would have opened", header_style="bold")
    for name in ("id", "severity", "service", "SLOs", "opened", "resolved", "notifications"):
        incidents.add_column(name, overflow="fold")
    for inc in result.incidents:
        incidents.add_row(
            inc.id,
            inc.severity.value,
            inc.service
            + (f" (+{', '.join(inc.related_services)})" if inc.related_services else ""),
            ", ".join(inc.slo_ids),
            _ts(inc.opened_at),
            _ts(inc.resolved_at),
            str(result.notifications.get(inc.id, 0)),
        )
    console.print(incidents)

    alerts = Table(title="Alerts", header_style="bold")
    for name in ("SLO", "severity", "start", "end", "held"):
        alerts.add_column(name, overflow="fold")
    for a in result.alerts:
        label = a.severity + (f" ({a.signal})" if a.signal else "")
        alerts.add_row(a.slo_id, label, _ts(a.start), _ts(a.end), a.held or "")
    console.print(alerts)

    budget = Table(title="Error budget consumed in the replayed range", header_style="bold")
    budget.add_column("SLO")
    budget.add_column("share of a period's budget", justify="right")
    for slo_id, value in summary["budget_consumed"].items():
        budget.add_row(slo_id, "no data" if value is None else f"{value:.2%}")
    console.print(budget)

    if scores:
        table = Table(title="Against the labelled incidents", header_style="bold")
        for name in ("policy", "precision", "recall", "detection (median)", "reset (median)"):
            table.add_column(name, justify="right")
        for s in scores:
            obj = s.to_json()
            table.add_row(
                s.policy,
                "—" if s.precision is None else f"{s.precision:.0%}",
                "—" if s.recall is None else f"{s.recall:.0%}",
                "—" if obj["detection_time"] is None else f"{obj['detection_time']['median']:.0f}s",
                "—" if obj["reset_time"] is None else f"{obj['reset_time']['median']:.0f}s",
            )
        console.print(table)


@app.command()
def backtest(
    specs: Annotated[
        list[Path], typer.Option("--specs", help="SLO spec file or directory (repeatable).")
    ],
    prometheus_url: Annotated[
        str, typer.Option("--prometheus-url", help="Prometheus base URL holding the history.")
    ],
    start: Annotated[str, typer.Option("--start", help="Unix seconds or RFC 3339.")],
    end: Annotated[str, typer.Option("--end", help="Unix seconds or RFC 3339.")],
    step: Annotated[
        str | None,
        typer.Option(
            "--step",
            help="Evaluation step (simulated cycle). Default: the daemon's finest step for "
            "--scrape-interval (1m up to 30s scrapes, 2m30s at 60s). A step shorter than 2 "
            "scrape intervals, or not dividing every window, is refused.",
        ),
    ] = None,
    scrape_interval: Annotated[
        str,
        typer.Option(
            "--scrape-interval",
            help="How often Prometheus scraped the SLIs' series: rate() needs 2 samples per step.",
        ),
    ] = "15s",
    output_format: Annotated[str, typer.Option("--format", help="table or json")] = "table",
    report: Annotated[
        Path | None, typer.Option("--report", help="Write an HTML report with plots here.")
    ] = None,
    labels: Annotated[
        Path | None,
        typer.Option(
            "--labels",
            help="YAML/JSON of known incident intervals per service: adds precision, recall, "
            "detection and reset time per policy.",
        ),
    ] = None,
    warmup: Annotated[
        str | None,
        typer.Option(
            help="History fetched before --start. Default: the longest SLO period (and the "
            "anomaly history when enabled); at least the longest alert window."
        ),
    ] = None,
    incident_config: Annotated[
        Path | None,
        typer.Option(
            "--incident-config",
            help="Incident engine config (receivers, grouping, flap, severity rules). "
            "Default: the runbook defaults with one catch-all receiver.",
        ),
    ] = None,
    bearer_token_file: Annotated[
        Path | None, typer.Option(help="File holding a bearer token for Prometheus.")
    ] = None,
    timeout: Annotated[float, typer.Option(help="Per-request timeout in seconds.")] = 30.0,
    workers: Annotated[
        int | None,
        typer.Option(help="Processes evaluating SLO groups in parallel (default: CPUs, ≤ 4)."),
    ] = None,
) -> None:
    """Replay history through the alert policy and incident engine; nothing is sent."""
    if output_format not in ("table", "json"):
        raise _fail(f"--format must be table or json, not {output_format!r}", EXIT_CANNOT_RUN)
    t0, t1, step_d, scrape, warmup_d = _parse_range(start, end, step, scrape_interval, warmup)
    slos = _load_slos(specs)
    known = _load_labels(labels)
    config = _load_incident_config(incident_config)
    plan = _plan(slos, t0, t1, step_d, scrape, warmup_d)
    stderr = Console(stderr=True)
    source = _prometheus(prometheus_url, timeout, bearer_token_file)
    n_workers = workers if workers is not None else min(os.cpu_count() or 1, 4)
    with _progress_bar(stderr.is_terminal or output_format == "table") as progress:
        result = _fetch_and_replay(source, slos, plan, config, progress, report, n_workers)
    scores = _score(result, known) if labels is not None else None
    _output(result, scores, report, output_format, _history(source))
    for slo_id, message in sorted(result.errors.items()):
        stderr.print(f"[yellow]warning:[/yellow] {slo_id}: {message}", highlight=False)


def _parse_range(
    start: str, end: str, step: str | None, scrape_interval: str, warmup: str | None
) -> tuple[float, float, Duration | None, Duration, Duration | None]:
    """--start, --end, --step, --scrape-interval, --warmup; unreadable: exit 2."""
    from engine.spec.durations import Duration, DurationError

    try:
        t0, t1 = parse_time(start), parse_time(end)
        step_d = None if step is None else Duration.parse(step)
        scrape = Duration.parse(scrape_interval)
        warmup_d = None if warmup is None else Duration.parse(warmup)
    except (ValueError, DurationError) as exc:
        raise _fail(str(exc), EXIT_CANNOT_RUN) from None
    return t0, t1, step_d, scrape, warmup_d


def _load_slos(specs: list[Path]) -> list[SLO]:
    """The SLOs of `specs`; invalid specs or none at all: exit 1."""
    from engine.spec.loader import load_specs

    loaded = load_specs(specs)
    if loaded.errors:
        err = Console(stderr=True)
        for error in loaded.errors:
            err.print(str(error), highlight=False, markup=False)
        err.print(f"[red]{len(loaded.errors)} error(s) in the specs; nothing replayed[/red]")
        raise typer.Exit(EXIT_INVALID)
    if not loaded.slos:
        raise _fail("no SLOs found in " + ", ".join(map(str, specs)), EXIT_INVALID)
    return loaded.slos


def _load_labels(labels: Path | None) -> list[Any]:
    from engine.backtest.labels import LabelsError, load_labels

    if labels is None:
        return []
    try:
        return load_labels(labels)
    except LabelsError as exc:
        raise _fail(str(exc), EXIT_INVALID) from None


def _load_incident_config(path: Path | None) -> IncidentConfig | None:
    from engine.incidents.config import load_incident_config

    if path is None:
        return None
    try:
        return load_incident_config(path)
    except (OSError, ValueError) as exc:
        raise _fail(f"{path}: {exc}", EXIT_INVALID) from None


def _plan(
    slos: list[SLO],
    t0: float,
    t1: float,
    step: Duration | None,
    scrape: Duration,
    warmup: Duration | None,
) -> ReplayPlan:
    from engine.backtest.replay import make_plan
    from engine.evaluation.resolution import ResolutionError, check_step, fine_step_for

    try:
        # The daemon's rule (engine.evaluation.resolution): a step of at least two scrape
        # intervals dividing every window. Omitted: the daemon's own finest step. Given but
        # too short: refused rather than silently raised — the user asked for that step.
        if step is None:
            step = fine_step_for(slos, scrape)
        else:
            check_step(step, scrape, slos)
        return make_plan(slos, t0, t1, step, warmup)
    except (ResolutionError, ValueError) as exc:
        raise _fail(str(exc), EXIT_CANNOT_RUN) from None


def _prometheus(url: str, timeout: float, bearer_token_file: Path | None) -> EventSource:
    from engine.source.prometheus import PrometheusSource

    return PrometheusSource(
        url,
        timeout=timeout,
        bearer_token_file=None if bearer_token_file is None else str(bearer_token_file),
    )


def _fetch_and_replay(
    source: EventSource,
    slos: list[SLO],
    plan: ReplayPlan,
    config: IncidentConfig | None,
    progress: Any,
    report: Path | None,
    workers: int,
) -> ReplayResult:
    """Fetch the history (Prometheus unavailable: exit 2), then replay it; traces for the
    plots only when a report is asked for. Grouped SLOs are replayed as their instances."""
    from engine.backtest.replay import fetch_history, replay
    from engine.evaluation.source import SourceUnavailable

    slos = _grouped_instances(source, slos, plan)
    try:
        rates = fetch_history(source, slos, plan, progress)
    except SourceUnavailable as exc:
        raise _fail(f"Prometheus is unavailable: {exc}", EXIT_CANNOT_RUN) from None
    return replay(slos, rates, plan, config, progress, traces=report is not None, workers=workers)


def _grouped_instances(source: EventSource, slos: list[SLO], plan: ReplayPlan) -> list[SLO]:
    """Grouped SLOs' groups, discovered once over the whole fetched range (the replay and
    its warm-up, ending at --end): every group with traffic in it is replayed as an SLO of
    its own, instances after their base. Failures and dropped groups are warnings; no
    discovery answered at all: exit 2."""
    if not any(slo.grouped for slo in slos):
        return slos
    from engine.source.discovery import all_unreachable, inventory_once
    from engine.spec.durations import Duration

    window = Duration(round((plan.end - plan.fetch_start) * 1000))
    inventory, answers = inventory_once(source, slos, plan.end, window)
    unreachable = all_unreachable(answers)
    if unreachable is not None:
        raise _fail(f"Prometheus is unavailable: {unreachable}", EXIT_CANNOT_RUN)
    stderr = Console(stderr=True)
    for base_id, answer in answers.items():
        if answer.error is not None:
            stderr.print(
                f"warning: {base_id}: group discovery failed: {answer.error}",
                highlight=False,
                markup=False,
            )
    for slo, reason in inventory.undiscovered():
        stderr.print(f"warning: {slo.id}: not replayed: {reason}", highlight=False, markup=False)
    for base_id, status in inventory.status().items():
        if status["dropped"]:
            stderr.print(
                f"warning: {base_id}: {status['dropped']} group(s) beyond max_groups="
                f"{status['max_groups']} not replayed, e.g. {status['dropped_groups'][0]}",
                highlight=False,
                markup=False,
            )
    return inventory.instances()


def _output(
    result: ReplayResult,
    scores: list[Any] | None,
    report: Path | None,
    output_format: str,
    history: dict[str, Any],
) -> None:
    """The HTML report if asked for, then the table or JSON on stdout."""
    if report is not None:
        from engine.backtest.report import write_report

        with _progress_bar(Console(stderr=True).is_terminal) as progress:
            write_report(result, report, scores, progress)
    if output_format == "json":
        obj: dict[str, Any] = result.to_json()
        if scores is not None:
            obj["labels"] = [s.to_json() for s in scores]
        obj["history"] = history
        sys.stdout.write(json.dumps(obj, indent=2) + "\n")
    else:
        console = Console() if Console().is_terminal else Console(width=200)
        render_table(result, scores, console)
        # Which way the history came: raw samples, or query_range (the fallback and why).
        why = f" ({history['fallback']})" if history["fallback"] else ""
        Console(stderr=True).print(f"history fetched over {history['method']}{why}")


def _history(source: EventSource) -> dict[str, Any]:
    from engine.source.remote_read import history_report

    return history_report(source)


def _score(result: Any, known: list[Any]) -> list[Any]:
    from engine.backtest.metrics import Detection, score_policy

    service_of = {s.id: s.service for s in result.slos}
    scores = []
    for severity in ("page", "ticket", "anomaly"):
        detections = [
            Detection(frozenset({service_of[a.slo_id]}), a.start, a.end)
            for a in result.alerts
            if a.severity == severity and a.held is None
        ]
        scores.append(score_policy(severity, detections, known, result.plan.start, result.plan.end))
    incidents = [
        Detection(frozenset({i.service, *i.related_services}), i.opened_at, i.resolved_at)
        for i in result.incidents
    ]
    scores.append(score_policy("incidents", incidents, known, result.plan.start, result.plan.end))
    return scores
