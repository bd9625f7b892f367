"""Time-slice SLOs' generated rules against the real promtool: they pass `check rules`, judge
each minute from its own good/total ratio, leave minutes without requests unjudged, and the
1h error ratio and burn rate are bad minutes ÷ judged minutes (÷ the budget) — the hand count
of the input series below."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from engine.generate.pipeline import generate
from engine.spec.loader import load_specs

needs_promtool = pytest.mark.skipif(
    shutil.which("promtool") is None,
    reason="needs promtool — install with: sudo apt-get install -y prometheus",
)

SPEC = """apiVersion: slo-engine/v1
service: shop
tier: critical
slos:
  - name: checkout-minutes
    objective: 99
    period: 1d
    timeslices: {slice: 1m, slice_target: 99}
    sli:
      events:
        bad: sum(rate(http_requests_total{job="shop",code="500"}[{{window}}]))
        total: sum(rate(http_requests_total{job="shop"}[{{window}}]))
"""
BAD = {70, 71, 95}  # minute m is (m−1 min, m min]: 5 errors per 105 requests a scrape
# No requests: no verdict (60 sits on the 1h edge); 100-105 make a quiet 5m window, 0 of 0.
QUIET = {60, 100, 101, 102, 103, 104, 105}
MINUTES = 121


def _counters() -> tuple[str, str]:
    """The two counters' samples every 15 s, as promtool `values` strings."""
    ok, failed, ok_values, failed_values = 0, 0, [], []
    for sample in range(MINUTES * 4 + 1):
        minute = -(-sample // 4)  # the minute whose interval holds this scrape
        if sample and minute not in QUIET:
            ok += 100
            failed += 5 if minute in BAD else 0
        ok_values.append(str(ok))
        failed_values.append(str(failed))
    return " ".join(ok_values), " ".join(failed_values)


def _unit_test(ratio: float, burn: float) -> str:
    ok, failed = _counters()
    sel = 'service="shop", slo="shop/checkout-minutes", tier="critical"'
    return f"""rule_files:
  - shop.rules.yml
evaluation_interval: 1m
# promtool orders groups it is not told about at random: verdicts first, as the window
# counts are meant to see this minute's verdict (in Prometheus the groups run on their own).
group_eval_order:
  - slo:shop/checkout-minutes:timeslices
  - slo:shop/checkout-minutes
  - slo:shop/checkout-minutes:period
tests:
  - interval: 15s
    input_series:
      - series: 'http_requests_total{{job="shop",code="200"}}'
        values: '{ok}'
      - series: 'http_requests_total{{job="shop",code="500"}}'
        values: '{failed}'
    promql_expr_test:
      - expr: slo:timeslice_bad:1m
        eval_time: 71m
        exp_samples: [{{labels: 'slo:timeslice_bad:1m{{{sel}}}', value: 1}}]
      - expr: slo:timeslice_bad:1m
        eval_time: 72m
        exp_samples: [{{labels: 'slo:timeslice_bad:1m{{{sel}}}', value: 0}}]
      - expr: slo:timeslice_bad:1m
        eval_time: 102m
        exp_samples: []
      - expr: slo:total_events:rate5m
        eval_time: 105m
        exp_samples: [{{labels: 'slo:total_events:rate5m{{{sel}}}', value: 0}}]
      - expr: slo:error_ratio:rate1h
        eval_time: 120m
        exp_samples: [{{labels: 'slo:error_ratio:rate1h{{{sel}}}', value: {ratio!r}}}]
      - expr: slo:burn_rate:1h
        eval_time: 120m
        exp_samples: [{{labels: 'slo:burn_rate:1h{{{sel}}}', value: {burn!r}}}]
"""


def _hand_count() -> tuple[int, int]:
    """(bad, judged) minutes in the 1h window ending at minute 120."""
    judged = [m for m in range(61, 121) if m not in QUIET]
    return sum(1 for m in judged if m in BAD), len(judged)


def _rules(tmp_path: Path) -> Path:
    specs = tmp_path / "specs"
    specs.mkdir()
    (specs / "shop.yaml").write_text(SPEC)
    loaded = load_specs([specs])
    assert not loaded.errors, loaded.errors
    (rules,) = [f for f in generate(loaded.slos) if f.path == "shop.rules.yml"]
    out = tmp_path / "shop.rules.yml"
    out.write_text(rules.text, encoding="utf-8")
    return out


def _promtool(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["promtool", *map(str, args)], capture_output=True, text=True, timeout=300, check=False
    )


def test_hand_count() -> None:
    assert _hand_count() == (3, 54)


def test_rules_judge_each_slice_in_a_group_of_its_own(tmp_path: Path) -> None:
    text = _rules(tmp_path).read_text()
    assert "- name: slo:shop/checkout-minutes:timeslices\n  interval: 1m\n" in text
    assert "> bool 0.01)" in text
    assert 'count_over_time(slo:timeslice_bad:1m{slo="shop/checkout-minutes"}[1h])' in text


@needs_promtool
def test_rules_pass_promtool_and_count_bad_slices(tmp_path: Path) -> None:
    rules = _rules(tmp_path)
    checked = _promtool("check", "rules", rules)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    bad, judged = _hand_count()
    # Divided in PromQL's order (slices per second over the hour), to the last bit.
    ratio = (bad / 3600) / (judged / 3600)
    (tmp_path / "timeslices.test.yml").write_text(_unit_test(ratio, ratio / 0.01))
    result = _promtool("test", "rules", tmp_path / "timeslices.test.yml")
    assert result.returncode == 0, result.stdout + result.stderr


@needs_promtool
def test_the_unit_test_fails_for_an_event_ratio(tmp_path: Path) -> None:
    # The same test expecting the event-weighted ratio must fail: the check is real.
    _rules(tmp_path)
    events = 3 * 5 / (54 * 105)
    (tmp_path / "timeslices.test.yml").write_text(_unit_test(events, events / 0.01))
    result = _promtool("test", "rules", tmp_path / "timeslices.test.yml")
    assert result.returncode != 0
    assert "slo:error_ratio:rate1h" in result.stdout + result.stderr
