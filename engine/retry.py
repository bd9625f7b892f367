"""When to try a failed delivery again, and when to stop hammering a receiver that is down.

Backoff uses "full jitter" (a uniform draw between 0 and the exponential cap): many
notifications failing together — typical when a receiver goes down mid-incident — spread
their retries out instead of returning in synchronized waves.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum

# A source of seconds (time.time, time.monotonic or a test's fake clock).
Clock = Callable[[], float]


@dataclass
class Backoff:
    """Exponential backoff with full jitter, bounded by attempts and by age.

    Delay before retry n (n = attempts so far, ≥ 1) is uniform in
    [0, min(max_delay, base_delay × 2^(n-1))], but never less than a Retry-After the
    receiver asked for. After `max_attempts` attempts, or once the notification is older
    than `max_age`, `next_attempt_at` returns None: dead-letter it.
    """

    base_delay: float = 5.0
    # Capped at 5 min so that a receiver back from an outage gets its backlog within
    # ~2.5 min on average (full jitter).
    max_delay: float = 300.0
    # With the cap above, ~100 attempts span about four hours of outage.
    max_attempts: int = 100
    # A page that could not be delivered for a day is history, not news.
    max_age: float = 86400.0
    rng: random.Random = field(default_factory=random.Random)

    def __post_init__(self) -> None:
        if self.base_delay <= 0 or self.max_delay < self.base_delay:
            raise ValueError("backoff needs 0 < base_delay <= max_delay")
        if self.max_attempts < 1 or self.max_age <= 0:
            raise ValueError("backoff needs max_attempts >= 1 and max_age > 0")

    def cap(self, attempts: int) -> float:
        # min() before the power would overflow for absurd attempt counts.
        exponent = min(max(attempts - 1, 0), 62)
        return min(self.max_delay, self.base_delay * (2**exponent))

    def delay(self, attempts: int, retry_after: float | None = None) -> float:
        jittered = self.rng.uniform(0.0, self.cap(attempts))
        return max(jittered, retry_after or 0.0)

    def next_attempt_at(
        self,
        attempts: int,
        now: float,
        created_at: float,
        retry_after: float | None = None,
    ) -> float | None:
        """When to try again after `attempts` failed attempts, or None to give up."""
        if attempts >= self.max_attempts:
            return None
        at = now + self.delay(attempts, retry_after)
        if at - created_at > self.max_age:
            return None
        return at


class BreakerState(StrEnum):
    closed = "closed"
    open = "open"
    half_open = "half_open"


class CircuitBreaker:
    """Per-receiver circuit breaker.

    closed: requests flow; `failure_threshold` consecutive failures open it.
    open: nothing is sent for `cooldown` seconds (items stay queued, attempts unspent).
    half_open: one trial request; success closes the breaker, failure re-opens it.

    Why: a receiver that is down would otherwise cost every queued notification a timeout
    per cycle, delaying deliveries to the receivers that work.
    """

    def __init__(
        self, failure_threshold: int = 5, cooldown: float = 60.0, clock: Clock = time.monotonic
    ) -> None:
        if failure_threshold < 1 or cooldown <= 0:
            raise ValueError("circuit breaker needs failure_threshold >= 1 and cooldown > 0")
        self.failure_threshold = failure_threshold
        self.cooldown = cooldown
        self._clock = clock
        self._lock = threading.Lock()
        self._state = BreakerState.closed
        self._failures = 0
        self._opened_at = 0.0
        self._trial_in_flight = False

    @property
    def state(self) -> BreakerState:
        with self._lock:
            self._maybe_half_open()
            return self._state

    @property
    def consecutive_failures(self) -> int:
        return self._failures

    def _maybe_half_open(self) -> None:
        if self._state is BreakerState.open and self._clock() >= self._opened_at + self.cooldown:
            self._state = BreakerState.half_open
            self._trial_in_flight = False

    def allow(self) -> bool:
        """May a request be sent now? In half-open state only the first caller may."""
        with self._lock:
            self._maybe_half_open()
            if self._state is BreakerState.closed:
                return True
            if self._state is BreakerState.half_open and not self._trial_in_flight:
                self._trial_in_flight = True
                return True
            return False

    def record_success(self) -> None:
        with self._lock:
            self._state = BreakerState.closed
            self._failures = 0
            self._trial_in_flight = False

    def record_failure(self) -> None:
        with self._lock:
            self._failures += 1
            if self._state is BreakerState.half_open or self._failures >= self.failure_threshold:
                self._state = BreakerState.open
                self._opened_at = self._clock()
                self._trial_in_flight = False

    def __repr__(self) -> str:
        return (
            f"CircuitBreaker(state={self._state.value}, failures={self._failures}, "
            f"threshold={self.failure_threshold}, cooldown={self.cooldown:g})"
        )
