"""Since when each SLO's error-budget policy has frozen releases, for the status page.

The policy state itself is a pure function of the latest evaluation
(engine/evaluation/budget_policy.py); "since when" needs memory of earlier cycles. It is
kept in this process only: a freeze seen on the first cycle after a start may have begun
earlier, so that one is marked `at_least` ("frozen since at least …") rather than dated
to the restart, which would understate how long releases have been held. A freeze that
ends (the budget seen back under the threshold — not a blind spell) is a thaw: `thawed`
after that cycle, for the unfreeze notice (engine/incidents/budget_policy.py).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from engine.evaluation.budget_policy import policy_state
from engine.evaluation.result import SLOEvaluation


@dataclass(frozen=True)
class FrozenSince:
    """When this process first saw the SLO frozen (continuously since)."""

    at: float
    # True when the freeze was already there on the first cycle this process ran: it began
    # at `at` or before.
    at_least: bool


class FreezeWatch:
    """Updated after each cycle; read by the status page."""

    def __init__(self) -> None:
        self._since: dict[str, FrozenSince] = {}
        self._first_cycle: float | None = None
        # SLOs whose freeze ended at the last `observe` (a budget back below the freeze
        # threshold): their receivers hear that releases are unfrozen.
        self.thawed: dict[str, FrozenSince] = {}

    def observe(self, results: Iterable[SLOEvaluation], at: float) -> None:
        self.thawed = {}
        first = self._first_cycle is None or self._first_cycle == at
        if self._first_cycle is None:
            self._first_cycle = at
        frozen: dict[str, FrozenSince] = {}
        for result in results:
            state = policy_state(result)
            if state is None:
                continue
            if state.status in ("ok", "notify"):
                if state.slo_id in self._since:  # a seen budget under the threshold: a thaw
                    self.thawed[state.slo_id] = self._since[state.slo_id]
                continue
            known = self._since.get(state.slo_id)
            if state.status == "unknown":
                # No data is not a thaw (the gate stayed closed through it): a freeze seen
                # before and after a blind spell is one freeze.
                if known is not None:
                    frozen[state.slo_id] = known
                continue
            frozen[state.slo_id] = known or FrozenSince(at, first)
        self._since = frozen

    def snapshot(self) -> dict[str, FrozenSince]:
        return dict(self._since)
