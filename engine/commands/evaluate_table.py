"""What `slo-engine evaluate` prints as a table (rich): a row per SLO, a column per window.
Imported only for the table: `--format json` (engine.commands.evaluate_output) starts
without rich."""

from __future__ import annotations

import time
from collections.abc import Sequence

from rich.console import Console
from rich.table import Table
from rich.text import Text

from engine.evaluation.result import SLOEvaluation, WindowValue, is_partial
from engine.spec.group_labels import label_set_text
from engine.spec.models import SLO

_STATUS_STYLE = {
    "ok": "green",
    "ticket": "yellow",
    "page": "bold red",
    "exhausted": "bold magenta",
    "no_data": "dim",
    "error": "red",
}


def _percent(value: float | None, digits: int = 3) -> str:
    if value is None:
        return "—"
    return f"{value * 100:.{digits}g}%"


def _burn(value: float | None) -> str:
    if value is None:
        return "—"
    return f"{value:.3g}×"


def _slo_cell(slo: SLO, previous: SLO | None) -> str:
    """The SLO column: its id; the next instances of one grouped SLO show only their group,
    indented under the first."""
    if slo.group and previous is not None and previous.group and previous.base_id == slo.base_id:
        return "  " + label_set_text(slo.group)
    return slo.id


def _window_cell(value: WindowValue | None) -> Text:
    """Burn rate over error ratio; a partial window adds a third line, e.g. `52% covered`
    (engine.evaluation.coverage), so a 30d column over two days of data says so."""
    if value is None or value.error_ratio is None:
        return Text("—", style="dim")
    cell = Text(_burn(value.burn_rate))
    cell.append(f"\n{_percent(value.error_ratio)}", style="dim")
    if is_partial(value.coverage):
        cell.append(f"\n{_percent(value.coverage, 2)} covered", style="yellow")
    return cell


def _budget_cell(evaluation: SLOEvaluation) -> Text:
    """Budget remaining; over a partial period also `partial: 10% of 30d`."""
    cell = Text(_percent(evaluation.error_budget_remaining))
    if evaluation.budget_partial:
        covered = _percent(evaluation.budget_coverage, 2)
        cell.append(f"\npartial: {covered} of {evaluation.slo.period}", style="yellow")
    return cell


def render_table(evaluations: Sequence[SLOEvaluation], at: float, console: Console) -> None:
    windows = sorted({w for e in evaluations for w in e.windows})
    table = Table(
        title=f"SLO evaluation at {time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime(at))}",
        caption="per window: burn rate over error ratio, then the share of the window with "
        "data when it is partial (under 99 %); budget = error budget remaining, "
        "partial when computed over part of its period",
        header_style="bold",
    )
    table.add_column("SLO", overflow="fold")
    table.add_column("status", no_wrap=True)
    for window in windows:
        table.add_column(str(window), justify="right", no_wrap=True)
    table.add_column("budget", justify="right", no_wrap=True)
    table.add_column("alerts", overflow="fold")
    previous: SLO | None = None
    for evaluation in evaluations:
        cells: list[Text | str] = [
            _slo_cell(evaluation.slo, previous),
            Text(evaluation.status, style=_STATUS_STYLE.get(evaluation.status, "")),
        ]
        cells += [_window_cell(evaluation.windows.get(window)) for window in windows]
        cells.append(_budget_cell(evaluation))
        alerts = Text()
        for alert in evaluation.alerts:
            if alert.held is None:
                alerts.append(
                    f"{alert.severity} {alert.long_window}/{alert.short_window} "
                    f"{float(alert.factor):g}×\n",
                    style=_STATUS_STYLE[alert.severity],
                )
            else:
                reason = f": {alert.held_reason}" if alert.held_reason else ""
                alerts.append(
                    f"{alert.severity} {alert.long_window}/{alert.short_window} held "
                    f"({alert.held}{reason})\n",
                    style="dim",
                )
        if evaluation.error:
            alerts.append(evaluation.error, style="red")
        alerts.rstrip()
        cells.append(alerts)
        table.add_row(*cells)
        previous = evaluation.slo
    console.print(table)
