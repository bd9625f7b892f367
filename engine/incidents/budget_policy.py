"""Error-budget policy notices, queued in the incident outbox so each is delivered once.

A `notify` threshold crossed (or a `freeze` one that names receivers) becomes one
`Notification` per receiver, of kind "budget_policy". Its id is deterministic —
`budget-policy:<slo>:<threshold>:<period number>:<receiver>`, the period number being
`floor(now / period)` — so every cycle, replica and restart that sees the same crossing
computes the same id, and the outbox (insert-or-ignore by id) keeps exactly one. A budget
still past the threshold a whole period later is told once more: a reminder per period,
never one per cycle.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

from engine.evaluation.budget_policy import policy_state
from engine.evaluation.result import SLOEvaluation
from engine.incidents.engine import IncidentEngine
from engine.incidents.incident import IncidentStatus, Notification, iso
from engine.incidents.state import Decision
from engine.incidents.transaction import Transaction

# Informational: a budget notice never pages (receivers map SEV4 to their lowest urgency).
NOTICE_SEVERITY = "SEV4"


def policy_notifications(results: Iterable[SLOEvaluation], now: float) -> list[Notification]:
    """Every notice the policies of these evaluations call for at `now` (ids deterministic)."""
    out: list[Notification] = []
    for result in results:
        state = policy_state(result)
        if state is None or state.consumed is None:
            continue
        period_number = math.floor(now / result.slo.period.seconds)
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
