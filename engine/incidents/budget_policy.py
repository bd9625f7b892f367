"""Error-budget policy notices, queued in the incident outbox so each is delivered once.

A `notify` threshold crossed (or a `freeze` one that names receivers) becomes one
`Notification` per receiver, of kind "budget_policy". Its id is deterministic —
`budget-policy:<slo>:<threshold>:<period number>:<receiver>`, the period number being
`floor(now / period)` for a rolling SLO and the start (unix seconds) of the calendar period
holding `now` for a calendar one — so every cycle, replica and restart that sees the same
crossing computes the same id, and the outbox (insert-or-ignore by id) keeps exactly one. A
budget still past the threshold a whole period later (or in the next calendar period, after
its reset) is told once more: a reminder per period, never one per cycle.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

from engine.evaluation.budget_policy import policy_state
from engine.evaluation.result import SLOEvaluation
from engine.incidents.engine import IncidentEngine
from engine.incidents.incident import IncidentStatus, Notification, iso
from engine.incidents.state import Decision
from engine.incidents.transaction import Transaction
from engine.spec.models import SLO

# Informational: a budget notice never pages (receivers map SEV4 to their lowest urgency).
NOTICE_SEVERITY = "SEV4"


def policy_notifications(results: Iterable[SLOEvaluation], now: float) -> list[Notification]:
    """Every notice the policies of these evaluations call for at `now` (ids deterministic)."""
    out: list[Notification] = []
    for result in results:
        state = policy_state(result)
        if state is None or state.consumed is None:
            continue
        period_number = _period_number(result.slo, now)
        for threshold in state.crossed:
            title = (
                f"[budget] {state.slo_id}: {state.consumed:.1f}% of the error budget consumed "
                f"(policy: {threshold.action} at {threshold.consumed:g}%)"
            )
            for receiver in threshold.receivers:
                out.append(
                    Notification(
                        id=(
                            f"budget-policy:{state.slo_id}:{threshold.consumed:g}:"
                            f"{period_number}:{receiver}"
                        ),
                        receiver=receiver,
                        event="triggered",
                        dedup_key=f"budget-policy:{state.slo_id}",
                        incident={
                            **_snapshot(result, state.consumed, now, title),
                            # What was crossed, for receivers' labels (Alertmanager, Slack).
                            "policy_threshold_percent": threshold.consumed,
                            "policy_action": threshold.action,
                        },
                        created_at=now,
                        message=_message(result, state.consumed, threshold.action),
                        title=title,
                        kind="budget_policy",
                    )
                )
    return out


def thaw_notifications(
    results: Iterable[SLOEvaluation], thawed: Mapping[str, float], now: float
) -> list[Notification]:
    """The unfreeze notices: for each SLO in `thawed` (id → when its freeze began), one
    `resolved` notice per receiver of each `freeze` threshold — releases may ship again, and
    the Alertmanager alert of that threshold ends. The id carries the freeze's start, so a
    thaw is told once per freeze whichever cycle or retry sees it."""
    out: list[Notification] = []
    for result in results:
        state = policy_state(result)
        began = thawed.get(result.slo.id)
        if state is None or began is None or state.consumed is None:
            continue
        slo = result.slo
        policy = slo.budget_policy
        freezes = [t for t in policy.thresholds if t.action == "freeze"] if policy else []
        for threshold in freezes:
            title = (
                f"[budget] {slo.id}: releases unfrozen — {state.consumed:.1f}% of the error "
                f"budget consumed, below the freeze at {threshold.consumed:g}%"
            )
            for receiver in threshold.receivers:
                out.append(
                    Notification(
                        id=(
                            f"budget-policy:{slo.id}:{threshold.consumed:g}:thawed:"
                            f"{math.floor(began)}:{receiver}"
                        ),
                        receiver=receiver,
                        event="resolved",
                        dedup_key=f"budget-policy:{slo.id}",
                        incident={
                            **_snapshot(result, state.consumed, now, title),
                            "status": IncidentStatus.resolved.value,
                            "resolved_at": iso(now),
                            "policy_threshold_percent": threshold.consumed,
                            "policy_action": "freeze",
                        },
                        created_at=now,
                        message=(
                            f"{slo.id} is back below its freeze threshold: releases of "
                            f"{slo.service} are no longer held by it "
                            f"(GET /api/v1/gates/{slo.service})."
                        ),
                        title=title,
                        kind="budget_policy",
                    )
                )
    return out


def _period_number(slo: SLO, now: float) -> int:
    """Which period `now` is in, for notice ids: a calendar SLO's is its calendar period
    (a month of 28 or 31 days in its zone), not `now` over the nominal length, so a
    crossing in a new month is a new notice however the nominal grid falls."""
    if slo.calendar is not None:
        return math.floor(slo.calendar.bounds(now)[0])
    return math.floor(now / slo.period.seconds)


def notices_decision(engine: IncidentEngine, notifications: list[Notification]) -> Decision:
    """A decision that only enqueues `notifications` (the state's version moves on, so the
    store writes it in its one transaction with the usual stale-state check)."""
    tx = Transaction.begin(engine.state)
    tx.dirty = True
    tx.notifications.extend(notifications)
    decision = tx.decision()
    engine.reset(decision.state)
    return decision


def _snapshot(result: SLOEvaluation, consumed: float, now: float, title: str) -> dict:
    """What receivers get in place of an incident snapshot (like the rate-limit summary)."""
    slo = result.slo
    return {
        "id": f"budget-policy:{slo.id}",
        "severity": NOTICE_SEVERITY,
        "status": IncidentStatus.investigating.value,
        "service": slo.service,
        "slos": [slo.id],
        "opened_at": iso(now),
        "summary": title,
        "runbook_url": slo.alerting.runbook_url,
        "dashboard_url": None,
        "acknowledged_by": None,
        "escalation_level": 0,
        "budget_consumed_percent": consumed,
        "error_budget_remaining": result.error_budget_remaining,
    }


def _message(result: SLOEvaluation, consumed: float, action: str) -> str:
    slo = result.slo
    lines = [
        f"{slo.id} has consumed {consumed:.1f}% of its error budget "
        f"(objective {slo.objective_percent}% over {slo.period}).",
    ]
    if action == "freeze":
        lines.append(
            f"Releases of {slo.service} are frozen: GET /api/v1/gates/{slo.service} answers 423 "
            "until the budget recovers below the freeze threshold."
        )
    return "\n".join(lines)
