"""Put the pieces together: periods and the ladder per SLO, one alert replay of every
variant, the policy comparison, the latency pairs.

    plan = history_plan(slos, end, days, step)
    rates = fetch_history(source, slos, plan)
    advice = advise(slos, rates, plan, labels=..., reference=replay(...), latency=...)

Pure: no I/O. The variants of an SLO replayed together are its candidate objectives with
its own alerting (slots `0` = current, then the standard ladder) and the policy alternatives
at the recommended objective (the one `--write` would put in the spec), so the policy
written is the policy that was compared.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from decimal import Decimal

from engine.advice.history import first_replayed
from engine.advice.ladder import LADDER, ladder
from engine.advice.latency import ThresholdShare, recommend_threshold
from engine.advice.periods import (
    Grid,
    Span,
    Sums,
    calendar_months,
    distribution,
    rolling_periods,
    rolling_samples,
    step_counts,
)
from engine.advice.policies import ALTERNATIVE_NAMES, policy_variants
from engine.advice.replays import VariantAlerts, replay_variants
from engine.advice.report import Advice, SLOAdvice
from engine.advice.scoring import PolicyRow, choose, fleet_rows, reference_incidents, score_row
from engine.backtest.labels import LabeledIncident
from engine.backtest.plan import Progress, ReplayPlan, no_progress
from engine.backtest.result import ReplayResult
from engine.evaluation.source import StepRates
from engine.spec.models import SLO

# Variant slots: the current objective, the standard ladder, then the policy alternatives
# (the first of which is the SLO's own alerting at the recommended objective).
OBJECTIVE_SLOTS = 1 + len(LADDER)
POLICY_CURRENT = OBJECTIVE_SLOTS
# Page intervals are kept where policies are scored: slot 0 (the current policy when the
# recommended objective is the current one) and the policy slots.
WITH_INTERVALS = (True, *([False] * len(LADDER)), *([True] * len(ALTERNATIVE_NAMES)))


def judge_periods(
    slo: SLO, rates: StepRates, row: int, grid: Grid, months: Sequence[Span]
) -> SLOAdvice:
    """Achieved SLI per period, per calendar month, its distribution, and the ladder."""
    if slo.id in rates.errors:
        return SLOAdvice(slo, error=rates.errors[slo.id])
    sums = Sums(*step_counts(rates, row))
    periods = sums.values(rolling_periods(grid, slo.period))
    return SLOAdvice(
        slo,
        periods=periods,
        months=sums.values(months),
        distribution=distribution(sums.values(rolling_samples(grid, slo.period))),
        ladder=ladder(slo.objective_percent, periods),
    )


def variants_of(advice: SLOAdvice) -> list[SLO | None]:
    """Objective slots then policy slots for one SLO (None: nothing to replay there, or the
    same variant in another slot — `_slot` says where to read it). Sets the objective the
    policies are compared at: the recommended one, else the current one."""
    slo = advice.slo
    if advice.error is not None:
        return [None] * (OBJECTIVE_SLOTS + len(ALTERNATIVE_NAMES))
    current = slo.objective_percent.normalize()
    rec = advice.recommendation
    advice.policy_objective = current if rec is None else rec.objective
    at = advice.policy_objective
    out: list[SLO | None] = [slo]
    out += [None if o in (current, at) else replace(slo, objective_percent=o) for o in LADDER]
    policies = policy_variants(slo, at)
    if at == current:
        policies[0] = None  # the current policy at the current objective is slot 0
    return out + policies


def _slot(advice: SLOAdvice, objective: Decimal) -> int:
    """Where the replay of the SLO at `objective` with its own alerting was stored."""
    current = advice.slo.objective_percent.normalize()
    if objective == current:
        return 0
    if objective == advice.policy_objective:
        return POLICY_CURRENT
    return 1 + LADDER.index(objective)


def fill_rungs(advice: SLOAdvice, alerts: VariantAlerts, row: int) -> None:
    if advice.ladder is None:
        return
    for rung in advice.ladder.rungs:
        slot = _slot(advice, rung.objective)
        if alerts.pages[row, slot] >= 0:
            rung.pages = int(alerts.pages[row, slot])
            rung.tickets = int(alerts.tickets[row, slot])


def policy_rows(
    advice: SLOAdvice,
    alerts: VariantAlerts,
    row: int,
    truth: Sequence[LabeledIncident],
    span: tuple[float, float],
) -> list[PolicyRow | None]:
    """One scored row per alternative (None where it does not apply to this SLO)."""
    service = advice.slo.service
    labels = [lb for lb in truth if lb.service == service]
    out: list[PolicyRow | None] = []
    for k, name in enumerate(ALTERNATIVE_NAMES):
        slot = OBJECTIVE_SLOTS + k
        if k == 0:
            assert advice.policy_objective is not None
            slot = _slot(advice, advice.policy_objective)
        if alerts.pages[row, slot] < 0:
            out.append(None)
            continue
        intervals = alerts.page_intervals[row][slot]
        out.append(
            score_row(name, service, intervals, int(alerts.tickets[row, slot]), labels, span)
        )
    return out


def latency_advice(
    advice: SLOAdvice, shares: list[ThresholdShare] | str | None, target: Decimal | None
) -> None:
    latency = advice.slo.sli.latency
    if latency is None or shares is None:
        return
    if isinstance(shares, str):
        advice.latency = shares
        return
    goal = advice.slo.objective_percent if target is None else target
    advice.latency = recommend_threshold(latency.threshold, goal, shares)


def advise(
    slos: Sequence[SLO],
    rates: StepRates,
    plan: ReplayPlan,
    *,
    days: int,
    labels: Sequence[LabeledIncident] | None = None,
    reference: ReplayResult | None = None,
    latency: dict[str, list[ThresholdShare] | str] | None = None,
    latency_target: Decimal | None = None,
    workers: int = 1,
    progress: Progress = no_progress,
) -> Advice:
    """Advice for every SLO of `slos` (the rows of `rates`, fetched for `plan`; a grouped
    SLO's spec-level record and its instances alike). Policies are scored against `labels`
    when given, else against the incidents of `reference` (a backtest replay of the current
    specs over the same plan)."""
    slos = list(slos)
    grid = Grid(rates.times, plan.step.seconds)
    first = first_replayed(rates, plan)
    months = calendar_months(grid)
    found = [judge_periods(slo, rates, row, grid, months) for row, slo in enumerate(slos)]
    variants = [variants_of(a) for a in found]
    alerts = replay_variants(slos, variants, WITH_INTERVALS, rates, first, workers, progress)
    truth = list(labels) if labels is not None else []
    if labels is None and reference is not None:
        truth = reference_incidents(reference)
    span = (plan.start, plan.end)
    per_slo = []
    for row, advice in enumerate(found):
        fill_rungs(advice, alerts, row)
        latency_advice(advice, (latency or {}).get(advice.slo.id), latency_target)
        if advice.error is not None:
            continue
        rows = policy_rows(advice, alerts, row, truth, span)
        advice.policy = choose([r for r in rows if r is not None])
        intervals = [alerts.page_intervals[row][OBJECTIVE_SLOTS + k] for k in range(len(rows))]
        intervals[0] = alerts.page_intervals[row][_slot(advice, advice.policy_objective)]  # type: ignore[arg-type]
        if not advice.slo.grouped or advice.slo.group:
            # The fleet is what the daemon alerts on: a grouped SLO's instances, not the
            # spec-level total next to them (its pages would count twice).
            per_slo.append((advice.slo.service, rows, intervals))
    fleet = None
    if per_slo:
        fleet = choose(fleet_rows(per_slo, ALTERNATIVE_NAMES, truth, span))
    return Advice(
        plan=plan,
        days=days,
        slos=found,
        reference="labels" if labels is not None else "incidents",
        fleet=fleet,
    )
