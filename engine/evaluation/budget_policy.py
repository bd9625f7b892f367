"""The state an error-budget policy puts an SLO in, and the release gate of a service.

Pure functions of `SLOEvaluation`s (no I/O, no clock): the API, /metrics, the status page,
the daemon's policy notifications and `slo-engine gate` all read the same answer.

Budget consumed is `(1 − error_budget_remaining) × 100` percent of the period's budget. An
SLO whose evaluation has no budget (no_data, error) is `unknown`, never `ok`: the gate
refuses to open on what it cannot see (docs/budgets.md, "The release gate").
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

from engine.evaluation.result import SLOEvaluation
from engine.spec.budget_policy import BudgetThreshold

PolicyStatus = Literal["ok", "notify", "frozen", "unknown"]
POLICY_STATUSES: tuple[PolicyStatus, ...] = ("ok", "notify", "frozen", "unknown")


@dataclass(frozen=True)
class PolicyState:
    """Where one SLO stands against its policy."""

    slo_id: str
    status: PolicyStatus
    consumed: float | None  # percent of the budget spent; None without data
    crossed: tuple[BudgetThreshold, ...]  # thresholds at or below `consumed`
    reason: str | None = None  # why frozen or unknown, for people and the gate

    @property
    def frozen(self) -> bool:
        return self.status == "frozen"

    def to_json(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "budget_consumed_percent": self.consumed,
            "crossed": [
                {"consumed": t.consumed, "action": t.action, "receivers": list(t.receivers)}
                for t in self.crossed
            ],
            "reason": self.reason,
        }


def policy_state(result: SLOEvaluation) -> PolicyState | None:
    """The SLO's policy state, or None when it has no `budget_policy`."""
    policy = result.slo.budget_policy
    if policy is None:
        return None
    slo_id = result.slo.id
    remaining = result.error_budget_remaining
    if result.status in ("no_data", "error") or remaining is None:
        why = result.error or "no events in the SLO period"
        return PolicyState(slo_id, "unknown", None, (), f"{slo_id}: budget unknown ({why})")
    consumed = round((1.0 - remaining) * 100.0, 6)
    crossed = tuple(
        sorted((t for t in policy.thresholds if consumed >= t.consumed), key=lambda t: t.consumed)
    )
    freezing = [t for t in crossed if t.action == "freeze"]
    if freezing:
        reason = (
            f"{slo_id}: {consumed:.1f}% of the error budget consumed "
            f"(freeze at {freezing[0].consumed:g}%)"
        )
        return PolicyState(slo_id, "frozen", consumed, crossed, reason)
    status: PolicyStatus = "notify" if crossed else "ok"
    return PolicyState(slo_id, status, consumed, crossed)


@dataclass(frozen=True)
class GateDecision:
    """`GET /api/v1/gates/{service}`: may this service release now?"""

    service: str
    allowed: bool
    reasons: tuple[str, ...]
    # Every SLO of the service with a policy, and where it stands.
    states: tuple[PolicyState, ...]

    @property
    def only_unknown(self) -> bool:
        """Closed only because some budgets are unknown (no SLO is frozen)."""
        return not self.allowed and not any(s.frozen for s in self.states)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"allowed": self.allowed, "service": self.service}
        if not self.allowed:
            out["reasons"] = list(self.reasons)
        out["slos"] = {s.slo_id: s.to_json() for s in self.states}
        return out


def release_gate(service: str, results: Iterable[SLOEvaluation]) -> GateDecision | None:
    """The gate of `service` from its SLOs' latest evaluations; None if it has none.

    Closed when any SLO with a `freeze` threshold is frozen — or unknown: a budget nobody
    can read may be spent, and a release is exactly what must not go out blind. SLOs
    without a freeze threshold never close the gate.
    """
    mine = [r for r in results if r.slo.service == service]
    if not mine:
        return None
    states = tuple(s for s in (policy_state(r) for r in mine) if s is not None)
    reasons = tuple(
        s.reason
        for s in states
        if s.reason is not None and _guards(s, mine) and s.status in ("frozen", "unknown")
    )
    return GateDecision(service, not reasons, reasons, states)


def _guards(state: PolicyState, results: list[SLOEvaluation]) -> bool:
    """Whether the SLO of `state` has a freeze threshold (only those hold the gate)."""
    for result in results:
        if result.slo.id == state.slo_id:
            policy = result.slo.budget_policy
            return policy is not None and policy.freezes
    return False
