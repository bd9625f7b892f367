"""How fine the evaluation grid can be, given how often Prometheus scrapes.

Why this exists: the source asks Prometheus for `rate(x[step])` once per step, and `rate()`
needs at least two samples inside its range. A 1m step over 60 s scrapes usually holds one
sample, so every fine step reads as "no data" and the windows built from them (5m, 30m, 2h,
6h: every page rule) go blind. Synthetic data hides this when its scrapes sit exactly on the
minute grid and Prometheus 2.x ranges include both ends; real scrapes have their own phase,
and Prometheus 3 ranges are left-open. So the finest step follows the scrape interval:

    fine step = the smallest step that is
        ≥ 1m                                 (finer is never needed and costs memory)
        ≥ 2 × scrape interval                (two samples in every step; see below)
        and divides every window of every loaded SLO (windows stay exact sums of steps)

    scrape interval   15s   30s   45s     60s     90s   2m    5m
    fine step          1m    1m   1m40s   2m30s   5m    5m    impossible with a 5m window

Two scrape intervals are enough: Prometheus stamps scrapes on a fixed per-target phase, so a
half-open step (t − S, t] of S = 2 × interval holds exactly two regular samples, whatever the
phase, in Prometheus 2 and 3 alike. A missed scrape then leaves that one step with a single
sample: it reads as no data (skipped by the window sums, never zero), and the windows keep the
other steps. Give a longer `scrape_interval` than the real one for more margin.

The coarser tiers keep their default steps (5m, 1h) when those are multiples of the fine step;
otherwise a tier takes the least common multiple (a 2m fine step gets a 10m middle tier), and
tiers that coincide merge. Every tier step is therefore ≥ 2 × the scrape interval too.

Pure: SLOs and durations in, steps out; the caller reads `scrape_interval` from its config.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from engine.evaluation.cache import DEFAULT_TIERS, Tier
from engine.evaluation.decisions import evaluation_windows
from engine.evaluation.policy import policy_for
from engine.spec.durations import Duration
from engine.spec.models import SLO

# What the fine step assumes when nothing is configured: Prometheus' common 15 s (and any
# scrape interval up to 30 s) keeps the historical 1m grid.
DEFAULT_SCRAPE_INTERVAL = Duration.parse("15s")
# The finest step the engine evaluates at: the default cache tier.
FINEST_STEP = DEFAULT_TIERS[0].step
# rate()/increase() need two samples inside the range.
SCRAPES_PER_STEP = 2
_HOUR_MS = 3_600_000


class ResolutionError(ValueError):
    """No evaluation step fits the scrape interval and the SLOs' windows."""


@dataclass(frozen=True)
class Resolution:
    """The cache tiers chosen for a scrape interval and a set of SLOs."""

    scrape_interval: Duration
    tiers: tuple[Tier, ...]

    @property
    def fine_step(self) -> Duration:
        return self.tiers[0].step

    def describe(self) -> dict[str, object]:
        """JSON-ready summary (the daemon's spec status shows it)."""
        return {
            "scrape_interval": str(self.scrape_interval),
            "fine_step": str(self.fine_step),
            "tiers": [str(t.step) for t in self.tiers],
        }


def minimum_step(scrape_interval: Duration) -> Duration:
    """The shortest step whose `rate()` always sees two samples of a regular scrape."""
    if scrape_interval.ms <= 0:
        raise ResolutionError(f"the scrape interval must be positive, got {scrape_interval}")
    return Duration(SCRAPES_PER_STEP * scrape_interval.ms)


def _smallest_divisor_at_least(n: int, floor: int) -> int | None:
    """The smallest divisor d of n (ms) with d ≥ floor and d a whole number of seconds."""
    best: int | None = None
    for k in range(1, math.isqrt(n) + 1):
        if n % k:
            continue
        for d in (k, n // k):
            if d >= floor and d % 1000 == 0 and (best is None or d < best):
                best = d
    return best


def _windows_by_slo(slos: Sequence[SLO]) -> list[tuple[SLO, tuple[Duration, ...]]]:
    # The same windows the evaluation reads: the policy's, its period, and the 1h exhaustion
    # window — so every SLO's windows include 1h and the fine step always divides an hour.
    return [(s, evaluation_windows([policy_for(s)])) for s in slos]


def fine_step_for(slos: Sequence[SLO], scrape_interval: Duration) -> Duration:
    """The finest evaluation step for these SLOs (see the module docstring).

    Raises `ResolutionError` naming the SLOs whose windows cannot be built at this scrape
    interval, with the shortest window that would work.
    """
    floor = max(FINEST_STEP.ms, minimum_step(scrape_interval).ms)
    per_slo = _windows_by_slo(slos)
    windows = {w.ms for _, ws in per_slo for w in ws} or {_HOUR_MS}
    common = math.gcd(*windows)
    step = _smallest_divisor_at_least(common, floor)
    if step is not None:
        return Duration(step)
    raise ResolutionError(_explain(per_slo, scrape_interval, floor))


def _explain(
    per_slo: Sequence[tuple[SLO, tuple[Duration, ...]]], scrape_interval: Duration, floor: int
) -> str:
    need = Duration(floor)
    head = (
        f"no evaluation step fits a {scrape_interval} scrape interval: rate() needs "
        f"{SCRAPES_PER_STEP} samples per step, so the finest step must be at least {need} and "
        "divide every SLO window"
    )
    # Every SLO reads a 1h window, so a working step divides an hour: suggest the smallest.
    suggested = _smallest_divisor_at_least(_HOUR_MS, floor)
    if suggested is None:
        return (
            f"{head}; no step of {need} or more divides the 1h window every SLO reads — "
            "scrape at least every 30m (scrape_interval ≤ 30m)"
        )
    step = Duration(suggested)
    problems = []
    for slo, windows in per_slo:
        bad = [w for w in windows if w.ms % suggested]
        if bad:
            listed = ", ".join(str(w) for w in bad)
            problems.append(
                f"{slo.id}: window {listed} is not a whole number of {step} steps — give it "
                f"a short window of at least {step} that is a multiple of {step} "
                f"(alerting.burn_rates), or scrape more often"
            )
    return "; ".join([head, *problems])


def tiers_for(fine_step: Duration, base: Sequence[Tier] = DEFAULT_TIERS) -> tuple[Tier, ...]:
    """The cache tiers with `fine_step` as the finest: coarser default steps that are not a
    multiple of it become the least common multiple; tiers that coincide merge (the longer
    retention wins)."""
    if fine_step.ms <= 0 or fine_step.ms % 1000:
        raise ResolutionError(f"the fine step must be whole seconds, got {fine_step}")
    tiers = [Tier(fine_step, base[0].retention)]
    for tier in base[1:]:
        previous = tiers[-1]
        step = math.lcm(previous.step.ms, tier.step.ms)
        if step == previous.step.ms:
            tiers[-1] = Tier(previous.step, max(previous.retention, tier.retention))
        else:
            tiers.append(Tier(Duration(step), tier.retention))
    return tuple(tiers)


def resolution_for(
    slos: Sequence[SLO], scrape_interval: Duration = DEFAULT_SCRAPE_INTERVAL
) -> Resolution:
    """Cache tiers for these SLOs at this scrape interval; raises `ResolutionError`."""
    return Resolution(scrape_interval, tiers_for(fine_step_for(slos, scrape_interval)))


def check_step(step: Duration, scrape_interval: Duration, slos: Sequence[SLO]) -> None:
    """A step chosen by hand (backtest `--step`) must obey the same rule as the daemon's:
    ≥ 2 × the scrape interval and a divisor of every window. Raises `ResolutionError`."""
    floor = minimum_step(scrape_interval)
    if step < floor:
        try:
            hint = f"use --step {fine_step_for(slos, scrape_interval)} (the daemon's step)"
        except ResolutionError:
            hint = "use a longer --step"
        raise ResolutionError(
            f"--step {step} is shorter than {SCRAPES_PER_STEP} × the scrape interval "
            f"({scrape_interval}): rate() over one step would often see a single sample and "
            f"read as no data — {hint}, or pass the real --scrape-interval"
        )
    for slo, windows in _windows_by_slo(slos):
        bad = [w for w in windows if w.ms % step.ms]
        if bad:
            raise ResolutionError(
                f"{slo.id}: window {', '.join(map(str, bad))} is not a whole number of {step} "
                "steps — use a --step that divides every window (omit --step for the "
                "daemon's step)"
            )
