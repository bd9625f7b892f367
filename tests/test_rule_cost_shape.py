"""The generated rules' cost shape (issue #18 item 5): every raw range is read once per
window per evaluation, and the period rollup reads recorded series only.

Prometheus evaluates both sides of `or`/`and` and shares nothing between rules, so each
occurrence of a raw range in a group is a decode of that range every evaluation; these
tests read the generated text (engine.generate.range_reads) and fail on any second read.
bench/bench_rule_cost.py measures what this buys against Sloth-style rules."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from engine.evaluation.policy import policy_for
from engine.generate.pipeline import service_rule_groups
from engine.generate.range_reads import (
    expr_range_reads,
    group_range_reads,
    repeated_raw_reads,
)
from engine.generate.rules import period_group_name, tile_window
from engine.spec.models import SLO, ServiceSpec

ROOT = Path(__file__).resolve().parents[1]
W = "{{window}}"
SLIS: dict[str, dict[str, Any]] = {
    "bad": {
        "events": {
            "bad": f'sum(rate(http_requests_total{{job="shop",code=~"5.."}}[{W}]))',
            "total": f'sum(rate(http_requests_total{{job="shop"}}[{W}]))',
        }
    },
    "good": {
        "events": {
            "good": f'sum(rate(http_requests_total{{job="shop",code!~"5.."}}[{W}]))',
            "total": f'sum(rate(http_requests_total{{job="shop"}}[{W}]))',
        }
    },
    "latency": {
        "latency": {
            "histogram": "http_request_duration_seconds",
            "selector": 'job="shop"',
            "threshold": "300ms",
        }
    },
    "native": {
        "latency": {
            "histogram": "http_request_duration_seconds",
            "selector": 'job="shop"',
            "threshold": "250ms",
            "native": True,
        }
    },
    "availability": {"availability": {"metric": 'up{job="shop"}'}},
}
# Where the SLI's own PromQL reads one range more than once, which no rule layout avoids:
# a native histogram's good rate reads the summed histogram three times (histogram_fraction,
# histogram_count, and the `0 * count` of a quiet window), plus once for the total; an
# availability SLI counts its gauge's samples for the total, and counts and sums them again
# for the bad rate. Reads per window (the layout before this one: 5 and 4).
READS_PER_WINDOW = {"native": 4, "availability": 3}


def slos(group_by: list[str] | None = None, **extra: Any) -> list[tuple[str, SLO]]:
    spec: dict[str, Any] = {
        "apiVersion": "slo-engine/v1",
        "service": "shop",
        "slos": [
            {"name": name, "objective": 99.9, "sli": sli, **extra} for name, sli in SLIS.items()
        ],
    }
    if group_by:
        spec["group_by"] = group_by
    records = ServiceSpec.model_validate(spec).slo_records()
    return list(zip(SLIS, records, strict=True))


VARIANTS = {
    "default": {},
    "grouped": {"group_by": ["route"]},
    "28d": {"period": "28d"},
    "10m shortest window": {
        "alerting": {
            "burn_rates": [
                {"severity": "page", "long_window": "2h", "short_window": "10m", "factor": 10}
            ]
        }
    },
    "alerting off": {"alerting": {"page": False, "ticket": False}},
}


def groups_of(slo: SLO) -> list[dict[str, Any]]:
    return service_rule_groups([slo])


@pytest.mark.parametrize("variant", VARIANTS, ids=list(VARIANTS))
def test_each_raw_range_is_read_once_per_window_per_evaluation(variant: str) -> None:
    options = dict(VARIANTS[variant])
    group_by = options.pop("group_by", None)
    for kind, slo in slos(group_by, **options):
        for group in groups_of(slo):
            repeated = repeated_raw_reads(group)
            if kind in READS_PER_WINDOW:
                for reads in repeated.values():
                    assert len(reads) == READS_PER_WINDOW[kind], (kind, group["name"], reads)
            else:
                assert repeated == {}, (kind, group["name"], repeated)
            # The check does see the group's raw reads (it is not vacuously empty).
            assert any(not r.recorded for r in group_range_reads(group)), group["name"]


@pytest.mark.parametrize("variant", VARIANTS, ids=list(VARIANTS))
def test_the_period_rollup_reads_recorded_tiles_only(variant: str) -> None:
    options = dict(VARIANTS[variant])
    group_by = options.pop("group_by", None)
    for kind, slo in slos(group_by, **options):
        policy = policy_for(slo)
        (period,) = [g for g in groups_of(slo) if g["name"] == period_group_name(slo)]
        tile = str(tile_window(policy))
        for read in group_range_reads(period):
            if read.recorded:
                # The rollup: the period's length over this group's own tiles.
                assert read.window == str(policy.period), read
                assert read.operand.split("{")[0].endswith(f"_every{period['interval']}"), read
            else:
                # Raw series only through this run's tile, never over the period.
                assert read.window.split(":")[0] == tile, (kind, read)
        rollups = [
            r for r in period["rules"] if r["record"].endswith(f"_events:rate{policy.period}")
        ]
        assert len(rollups) == 2
        for rule in rollups:
            assert all(operand.startswith("slo:") for operand, _ in expr_range_reads(rule["expr"]))


def test_raw_reads_per_evaluation_match_sloths_count() -> None:
    # Sloth records bad ÷ total per window straight from the raw counters: two raw ranges per
    # window. Ours, recorded separately for event-weighted ratios, read no more.
    (_, slo), *_ = slos()
    window_group, _ = groups_of(slo)
    windows = [w for w in policy_for(slo).windows if w != policy_for(slo).period]
    raw = [r for r in group_range_reads(window_group) if not r.recorded]
    assert len(raw) == 2 * len(windows) == 14


def test_the_check_catches_the_old_double_read() -> None:
    # The layout this replaced: the bad rate's `or 0 * total` fallback read the raw total
    # again next to the total's own rule. The check must fail on it.
    total = 'sum(rate(http_requests_total{job="shop"}[5m]))'
    old = {
        "name": "old",
        "rules": [
            {
                "record": "slo:bad_events:rate5m",
                "expr": f'sum(rate(x{{code="500"}}[5m]))\nor 0 * {total}',
            },
            {"record": "slo:total_events:rate5m", "expr": total},
        ],
    }
    repeated = repeated_raw_reads(old)
    assert list(repeated) == [('http_requests_total{job="shop"}', "5m")]
    assert [r.rule for r in repeated[('http_requests_total{job="shop"}', "5m")]] == [0, 1]


def test_range_reads_parse_selectors_bare_names_and_subqueries() -> None:
    expr = 'sum(rate(a{b="]"}[5m])) / sum(rate(c [1h])) + count_over_time((up == 1)[5m:30s]) + slo:x{slo="s"}'
    assert expr_range_reads(expr) == [('a{b="]"}', "5m"), ("c", "1h"), ("(up==1)", "5m:30s")]


@pytest.mark.parametrize(
    "path", sorted((ROOT / "alerts").glob("*.rules.yml")), ids=lambda p: p.name
)
def test_committed_rules_read_each_raw_range_once(path: Path) -> None:
    for group in yaml.safe_load(path.read_text())["groups"]:
        for reads in repeated_raw_reads(group).values():
            # Only SLIs whose own PromQL repeats a range may (here: availability).
            assert len(reads) == READS_PER_WINDOW["availability"], (path.name, reads)
