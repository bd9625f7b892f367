"""decide → store.apply → on a stale state, reload and decide again: the one rule every
writer of incident state follows (daemon cycle and API, `slo-engine incidents`).

The store refuses a decision computed from an outdated state (`StaleStateError`, optimistic
concurrency); recomputing it from the reloaded state is always safe because the engine's
decisions are functions of (state, now, input) and notification ids are deterministic.
"""

from __future__ import annotations

from collections.abc import Callable

from engine.incidents.engine import IncidentEngine
from engine.incidents.state import Decision
from engine.store.base import IncidentStore, StaleStateError, StoreError

# How often a decision refused as stale is recomputed before giving up.
STALE_RETRIES = 5


class StateKeptChanging(StoreError):
    """Every retry found the state changed underneath: the caller should try again later."""


def apply_with_retry(
    store: IncidentStore,
    engine: IncidentEngine,
    decide: Callable[[IncidentEngine, float], Decision],
    clock: Callable[[], float],
    *,
    at: float | None = None,
    retries: int = STALE_RETRIES,
    apply: Callable[[Decision], None] | None = None,
    on_stale: Callable[[], None] | None = None,
) -> Decision:
    """Compute `decide(engine, now)`, write it, and retry from the stored state when the
    store says it is stale. Any other error from `decide` (e.g. `IncidentError`) resyncs the
    engine with the store — the engine only moves its state on success — and propagates.
    Any other error from the write propagates as it is (the caller decides what a store
    failure means); exhausting `retries` raises `StateKeptChanging`.

    `now` is `at` when given (a cycle decides for its own instant), else the clock at each
    attempt; the state is always reloaded as of the clock. `apply` replaces `store.apply`
    (the daemon wraps it in a span); `on_stale` is told about each retry (logging).
    """
    write = store.apply if apply is None else apply
    for _ in range(retries):
        try:
            decision = decide(engine, clock() if at is None else at)
        except Exception:
            engine.reset(store.load_state(clock()))
            raise
        try:
            write(decision)
        except StaleStateError:
            if on_stale is not None:
                on_stale()
            engine.reset(store.load_state(clock()))
            continue
        return decision
    raise StateKeptChanging("the incident state kept changing underneath; try again")
