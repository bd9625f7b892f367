"""`slo-engine backtest`: what would the policy have done over this history?

Fetches history in bulk, replays it through the daemon's evaluation, low-traffic guard,
anomaly detection and incident engine on a simulated clock (nothing is sent), and prints the
alerts and incidents it would have produced — a table, or the documented JSON contract.

Exit codes (docs/cli.md): 0 the replay ran; 1 invalid specs, labels or incident config;
2 usage (a bad flag, a step the scrape interval cannot support); 3 Prometheus unreachable or
not answering its API; 4 internal error.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table

from engine.commands.app import app
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
    TableFormat,
    TimeoutOption,
    WorkersOption,
    duration_flag,
    prometheus_access,
    time_flag,
)
from engine.spec.durations import Duration

if TYPE_CHECKING:  # imported inside the functions at run time: the CLI starts without them
    from engine.backtest.plan import ReplayPlan
    from engine.backtest.result import ReplayResult
    from engine.evaluation.source import EventSource
    from engine.incidents.config import IncidentConfig
    from engine.spec.models import SLO

EXIT_OK = ExitCode.OK
EXIT_INVALID = ExitCode.FINDINGS
EXIT_USAGE = ExitCode.USAGE
EXIT_UNAVAILABLE = ExitCode.UNAVAILABLE

_PHASES = {
    "fetch": "fetching history",
    "evaluate": "evaluating",
    "replay": "replaying",
    "report": "writing the report",
}


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


StartOption = Annotated[
    float, typer.Option("--start", parser=time_flag, metavar="TIME", help=f"{TIME_HELP}.")
]
EndOption = Annotated[
    float, typer.Option("--end", parser=time_flag, metavar="TIME", help=f"{TIME_HELP}.")
]
StepOption = Annotated[
    Duration | None,
    typer.Option(
        "--step",
        parser=duration_flag,
        metavar="DURATION",
        help="Evaluation step (simulated cycle). Default: the daemon's finest step for "
        "--scrape-interval (1m up to 30s scrapes, 2m30s at 60s). A step shorter than 2 "
        "scrape intervals, or not dividing every window, is refused.",
    ),
]
ScrapeIntervalOption = Annotated[
    Duration,
    typer.Option(
        "--scrape-interval",
        parser=duration_flag,
        metavar="DURATION",
        help="How often Prometheus scraped the SLIs' series: rate() needs 2 samples per step.",
    ),
]
FormatOption = Annotated[
    TableFormat, typer.Option("--format", help="Tables, or the JSON document.")
]
ReportOption = Annotated[
    Path | None,
    typer.Option("--report", metavar="FILE", help="Write an HTML report with plots here."),
]
LabelsOption = Annotated[
    Path | None,
    typer.Option(
        "--labels",
        metavar="FILE",
        help="YAML/JSON of known incident intervals per service: adds precision, recall, "
        "detection and reset time per policy.",
    ),
]
WarmupOption = Annotated[
    Duration | None,
    typer.Option(
        parser=duration_flag,
        metavar="DURATION",
        help="History fetched before --start. Default: the longest SLO period (and the "
        "anomaly history when enabled); at least the longest alert window.",
    ),
]
IncidentConfigOption = Annotated[
    Path | None,
    typer.Option(
        "--incident-config",
        metavar="FILE",
        help="Incident engine config (receivers, grouping, flap, severity rules). "
        "Default: the runbook defaults with one catch-all receiver.",
    ),
]


@app.command()
def backtest(
    specs: SpecsOption,
    prometheus_url: PrometheusUrlOption,
    start: StartOption,
    end: EndOption,
    step: StepOption = None,
    scrape_interval: ScrapeIntervalOption = Duration.parse("15s"),
    output_format: FormatOption = TableFormat.table,
    report: ReportOption = None,
    labels: LabelsOption = None,
    warmup: WarmupOption = None,
    incident_config: IncidentConfigOption = None,
    bearer_token_file: BearerTokenFile = None,
    basic_auth_user: BasicAuthUser = None,
    basic_auth_password_file: BasicAuthPasswordFile = None,
    ca_bundle: CaBundle = None,
    client_cert: ClientCert = None,
    client_key: ClientKey = None,
    timeout: TimeoutOption = Duration.parse("30s"),
    workers: WorkersOption = None,
) -> None:
    """Replay history through the alert policy and incident engine; nothing is sent."""
    slos = _load_slos(specs)
    known = _load_labels(labels)
    config = _load_incident_config(incident_config)
    plan = _plan(slos, start, end, step, scrape_interval, warmup)
    stderr = Console(stderr=True)
    access = prometheus_access(
        bearer_token_file,
        basic_auth_user,
        basic_auth_password_file,
        ca_bundle,
        client_cert,
        client_key,
    )
    source = _prometheus(prometheus_url, timeout, access)
    n_workers = workers if workers is not None else min(os.cpu_count() or 1, 4)
    with _progress_bar(stderr.is_terminal or output_format is TableFormat.table) as progress:
        result = _fetch_and_replay(source, slos, plan, config, progress, report, n_workers)
    scores = _score(result, known) if labels is not None else None
    _output(result, scores, report, output_format, _history(source))
    for slo_id, message in sorted(result.errors.items()):
        stderr.print(f"[yellow]warning:[/yellow] {slo_id}: {message}", highlight=False)


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
        raise _fail(str(exc), EXIT_USAGE) from None


def _prometheus(url: str, timeout: Duration, access: dict[str, Any]) -> EventSource:
    """The Prometheus source with the auth/TLS flags (engine/commands/options.py); options
    that cannot work together (a key without its certificate): exit 2."""
    from engine.source.prometheus import PrometheusSource

    try:
        return PrometheusSource(url, timeout=timeout.seconds, **access)
    except (ValueError, OSError) as exc:
        raise _fail(str(exc), EXIT_USAGE) from None


def _fetch_and_replay(
    source: EventSource,
    slos: list[SLO],
    plan: ReplayPlan,
    config: IncidentConfig | None,
    progress: Any,
    report: Path | None,
    workers: int,
) -> ReplayResult:
    """Fetch the history (Prometheus unavailable: exit 3), then replay it; traces for the
    plots only when a report is asked for. Grouped SLOs are replayed as their instances."""
    from engine.backtest.replay import fetch_history, replay
    from engine.evaluation.source import SourceUnavailable

    slos = _grouped_instances(source, slos, plan)
    try:
        rates = fetch_history(source, slos, plan, progress)
    except SourceUnavailable as exc:
        raise _fail(f"Prometheus is unavailable: {exc}", EXIT_UNAVAILABLE) from None
    return replay(slos, rates, plan, config, progress, traces=report is not None, workers=workers)


def _grouped_instances(source: EventSource, slos: list[SLO], plan: ReplayPlan) -> list[SLO]:
    """Grouped SLOs' groups, discovered once over the whole fetched range (the replay and
    its warm-up, ending at --end): every group with traffic in it is replayed as an SLO of
    its own, instances after their base. Failures and dropped groups are warnings; no
    discovery answered at all: exit 3."""
    if not any(slo.grouped for slo in slos):
        return slos
    from engine.source.discovery import all_unreachable, inventory_once

    window = Duration(round((plan.end - plan.fetch_start) * 1000))
    inventory, answers = inventory_once(source, slos, plan.end, window)
    unreachable = all_unreachable(answers)
    if unreachable is not None:
        raise _fail(f"Prometheus is unavailable: {unreachable}", EXIT_UNAVAILABLE)
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
    output_format: TableFormat,
    history: dict[str, Any],
) -> None:
    """The HTML report if asked for, then the table or JSON on stdout."""
    if report is not None:
        from engine.backtest.report import write_report

        with _progress_bar(Console(stderr=True).is_terminal) as progress:
            write_report(result, report, scores, progress)
    if output_format is TableFormat.json:
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
