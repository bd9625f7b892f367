"""The documented range of every duration and count in the daemon config (docs/daemon.md,
"Limits"). Anything outside is refused at start-up with a located error: an `interval` of
400 digits once reached APScheduler as an `OverflowError`, and a 3,000-day timeout is as
surely a typo as a 0-second one.
"""

from __future__ import annotations

from typing import Any

from engine.spec.durations import Duration

# key → (shortest, longest); a key absent or None in the config is not checked.
DURATION_RANGES: dict[str, tuple[Duration, Duration]] = {
    "query_timeout": (Duration.parse("100ms"), Duration.parse("10m")),
    "scrape_interval": (Duration.parse("1s"), Duration.parse("1h")),
    "interval": (Duration.parse("1s"), Duration.parse("1h")),
    "group_discovery_interval": (Duration.parse("1s"), Duration.parse("1d")),
    "delivery_interval": (Duration.parse("100ms"), Duration.parse("1h")),
    "escalation_interval": (Duration.parse("1s"), Duration.parse("1h")),
    "shutdown_flush_timeout": (Duration(0), Duration.parse("1h")),
    "invalid_specs_grace": (Duration(0), Duration.parse("1d")),
}
COUNT_RANGES: dict[str, tuple[int, int]] = {
    "blind_after_cycles": (1, 10_000),
    "batch_size": (1, 100_000),
}


def check_config_bounds(config: Any) -> None:
    """Raise ValueError naming the first key of `config` outside its documented range."""
    for key, (low, high) in DURATION_RANGES.items():
        value = getattr(config, key, None)
        if value is not None and not (low <= value <= high):
            raise ValueError(f"{key} {value} is out of range — {low} ≤ {key} ≤ {high}")
    for key, (lowest, highest) in COUNT_RANGES.items():
        count = getattr(config, key, None)
        if count is not None and not (lowest <= count <= highest):
            raise ValueError(f"{key} {count} is out of range — {lowest} ≤ {key} ≤ {highest}")
