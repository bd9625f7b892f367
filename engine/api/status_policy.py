"""Error-budget policy state on the status page: per SLO, which threshold is crossed and
how much budget is spent; per service, whether its release gate is closed, why and since
when (docs/budgets.md). Pure, like the rest of the page's view: formatted strings out.

The page shows the same state as `GET /api/v1/gates/{service}` (one function decides
both, engine/evaluation/budget_policy.py), so a person and a pipeline never disagree.
Receivers' names stay off the page: they are internal routing, not state.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from engine.daemon.policy_since import FreezeWatch, FrozenSince
from engine.evaluation.budget_policy import PolicyStatus, policy_state, release_gate
from engine.evaluation.result import SLOEvaluation

POLICY_LABEL: dict[PolicyStatus, str] = {
    "ok": "Within budget policy",
    "notify": "Budget policy threshold crossed",
    "frozen": "Releases frozen",
    "unknown": "Budget policy unknown",
}


@dataclass(frozen=True)
class PolicyBadge:
    """One SLO's policy state, ready to place."""

    status: PolicyStatus
    label: str
    consumed_text: str  # "112 % of the error budget consumed" or "budget consumed unknown"
    crossed_text: str | None  # "crossed: notify at 50 %, freeze at 100 %"
    reason: str | None  # why frozen or unknown
    since_text: str | None  # frozen only: "since 2026-12-04 21:00 UTC"


@dataclass(frozen=True)
class GateBadge:
    """A service whose release gate is closed (no badge while it is open)."""

    label: str  # "Releases frozen" or "Release gate closed: budget unknown"
    css: str  # "frozen" | "unknown"
    reasons: list[str]
    since_text: str | None


def freezes_of(runtime: object) -> dict[str, FrozenSince]:
    """Since when each SLO has been frozen, from the daemon's watch (its `budgets.freezes`,
    engine/daemon/policy_since.py); empty for a runtime that keeps none."""
    watch = getattr(getattr(runtime, "budgets", None), "freezes", None)
    return watch.snapshot() if isinstance(watch, FreezeWatch) else {}


def _number(value: float) -> str:
    return f"{value:.1f}".removesuffix(".0")


def _since_text(since: FrozenSince | None, when: Callable[[float | None], str]) -> str | None:
    if since is None:
        return None
    return f"since at least {when(since.at)}" if since.at_least else f"since {when(since.at)}"


def policy_badge(
    ev: SLOEvaluation,
    freezes: Mapping[str, FrozenSince],
    when: Callable[[float | None], str],
) -> PolicyBadge | None:
    """None for an SLO without a `budget_policy` (the page then shows nothing new)."""
    state = policy_state(ev)
    if state is None:
        return None
    consumed = (
        f"{_number(state.consumed)} % of the error budget consumed"
        if state.consumed is not None and math.isfinite(state.consumed)
        else "budget consumed unknown"
    )
    crossed = ", ".join(f"{t.action} at {_number(t.consumed)} %" for t in state.crossed)
    return PolicyBadge(
        status=state.status,
        label=POLICY_LABEL[state.status],
        consumed_text=consumed,
        crossed_text=f"crossed: {crossed}" if crossed else None,
        reason=state.reason,
        since_text=_since_text(freezes.get(state.slo_id), when) if state.frozen else None,
    )


def gate_badge(
    service: str,
    evs: Sequence[SLOEvaluation],
    freezes: Mapping[str, FrozenSince],
    when: Callable[[float | None], str],
) -> GateBadge | None:
    """The service's closed gate, or None while releases may go out."""
    decision = release_gate(service, evs)
    if decision is None or decision.allowed:
        return None
    frozen = [s for s in decision.states if s.frozen]
    if not frozen:
        return GateBadge(
            "Release gate closed: budget unknown", "unknown", list(decision.reasons), None
        )
    # The oldest freeze is how long releases have been held.
    known = [freezes[s.slo_id] for s in frozen if s.slo_id in freezes]
    oldest = min(known, key=lambda f: f.at) if known else None
    return GateBadge("Releases frozen", "frozen", list(decision.reasons), _since_text(oldest, when))
