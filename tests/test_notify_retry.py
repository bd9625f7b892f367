"""Backoff (full jitter, bounded) and the per-receiver circuit breaker, on a fake clock."""

from __future__ import annotations

import random

import pytest

from engine.retry import Backoff, BreakerState, CircuitBreaker


class FakeClock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def test_full_jitter_stays_under_an_exponential_cap() -> None:
    backoff = Backoff(base_delay=2, max_delay=60, rng=random.Random(7))
    assert [backoff.cap(n) for n in range(1, 8)] == [2, 4, 8, 16, 32, 60, 60]
    for attempts in range(1, 10):
        delays = [backoff.delay(attempts) for _ in range(300)]
        assert all(0 <= d <= backoff.cap(attempts) for d in delays)
        # Full jitter really spreads: both halves of the range are used.
        assert min(delays) < backoff.cap(attempts) * 0.25
        assert max(delays) > backoff.cap(attempts) * 0.75


def test_backoff_is_reproducible_with_a_seeded_rng() -> None:
    a = Backoff(rng=random.Random(42))
    b = Backoff(rng=random.Random(42))
    assert [a.delay(n) for n in range(1, 6)] == [b.delay(n) for n in range(1, 6)]


def test_retry_after_is_a_floor() -> None:
    backoff = Backoff(base_delay=1, max_delay=4, rng=random.Random(1))
    assert all(backoff.delay(3, retry_after=30) == 30 for _ in range(20))
    assert backoff.next_attempt_at(1, now=100, created_at=100, retry_after=45) == 145


def test_gives_up_after_max_attempts() -> None:
    backoff = Backoff(max_attempts=3, rng=random.Random(0))
    assert backoff.next_attempt_at(1, now=0, created_at=0) is not None
    assert backoff.next_attempt_at(2, now=0, created_at=0) is not None
    assert backoff.next_attempt_at(3, now=0, created_at=0) is None


def test_gives_up_after_max_age() -> None:
    backoff = Backoff(base_delay=10, max_delay=10, max_age=3600, rng=random.Random(0))
    assert backoff.next_attempt_at(1, now=3000, created_at=0) is not None
    assert backoff.next_attempt_at(1, now=3600, created_at=0) is None
    # A Retry-After that would carry the retry past max_age also dead-letters.
    assert backoff.next_attempt_at(1, now=100, created_at=0, retry_after=4000) is None


@pytest.mark.parametrize(
    "kwargs", [{"base_delay": 0}, {"max_delay": 1, "base_delay": 2}, {"max_attempts": 0}]
)
def test_backoff_rejects_nonsense(kwargs) -> None:
    with pytest.raises(ValueError):
        Backoff(**kwargs)


def test_breaker_opens_after_consecutive_failures_then_half_opens() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(failure_threshold=3, cooldown=60, clock=clock)
    for _ in range(2):
        assert breaker.allow()
        breaker.record_failure()
    assert breaker.state is BreakerState.closed
    assert breaker.allow()
    breaker.record_failure()
    assert breaker.state is BreakerState.open
    assert not breaker.allow()
    clock.advance(59.9)
    assert not breaker.allow()
    clock.advance(0.1)
    assert breaker.state is BreakerState.half_open
    # Exactly one trial request in half-open state.
    assert breaker.allow()
    assert not breaker.allow()
    breaker.record_success()
    assert breaker.state is BreakerState.closed
    assert breaker.consecutive_failures == 0
    assert breaker.allow() and breaker.allow()


def test_failed_trial_reopens_for_a_full_cooldown() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(failure_threshold=1, cooldown=30, clock=clock)
    breaker.record_failure()
    clock.advance(30)
    assert breaker.allow()
    breaker.record_failure()
    assert breaker.state is BreakerState.open
    clock.advance(29)
    assert not breaker.allow()
    clock.advance(1)
    assert breaker.allow()


def test_a_success_resets_the_failure_count() -> None:
    breaker = CircuitBreaker(failure_threshold=3, cooldown=30, clock=FakeClock())
    breaker.record_failure()
    breaker.record_failure()
    breaker.record_success()
    breaker.record_failure()
    breaker.record_failure()
    assert breaker.state is BreakerState.closed
