"""`suggest`'s pure parts: periods on the step grid, the ladder's choice, the policy choice,
and positional spec edits (no Prometheus)."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import numpy as np
import pytest
from harness.specs import events_slo

from engine.advice.ladder import LadderResult, Recommendation, ladder
from engine.advice.patch import check_patches, plan_patches
from engine.advice.periods import Grid, Sums, calendar_months, rolling_periods
from engine.advice.policies import policy_variants
from engine.advice.report import Advice, SLOAdvice
from engine.advice.scoring import PolicyRow, choose
from engine.advice.yaml_edit import EditError, TextEdits
from engine.backtest.metrics import PolicyScore
from engine.backtest.plan import ReplayPlan
from engine.spec.durations import Duration
from engine.spec.loader import load_specs
from engine.spec.yaml_lines import parse_yaml

DAY = 86_400
T0 = 1_704_067_200  # 2024-01-01 00:00 UTC
STEP = 300


def _grid(days: int, start: int = T0) -> Grid:
    return Grid(start + STEP * np.arange(1, days * DAY // STEP + 1, dtype=np.float64), STEP)


def _periods(error_ratio: float, days: int = 21, period: str = "7d") -> list:
    grid = _grid(days)
    total = np.full(grid.times.size, 100.0)
    sums = Sums(total * error_ratio, total)
    return sums.values(rolling_periods(grid, Duration.parse(period)))


def test_rolling_periods_end_at_the_history_end_and_months_are_cut() -> None:
    grid = _grid(45, start=T0 + 10 * DAY)  # 2024-01-11 → 2024-02-25
    spans = rolling_periods(grid, Duration.parse("14d"))
    assert [(s.start, s.end) for s in spans] == [
        (grid.end - 14 * DAY * (k + 1), grid.end - 14 * DAY * k) for k in range(3)
    ]
    assert all(s.hi - s.lo == 14 * DAY // STEP for s in spans)
    months = calendar_months(grid)
    assert [(m.label, m.partial) for m in months] == [("2024-01", True), ("2024-02", True)]
    assert months[0].hi - months[0].lo == 21 * DAY // STEP


def test_missing_steps_are_no_data_never_perfect() -> None:
    grid = _grid(14)
    total = np.full(grid.times.size, 10.0)
    total[: total.size * 3 // 4] = np.nan  # no data in the older week, half of the newer
    values = Sums(np.zeros_like(total), total).values(rolling_periods(grid, Duration.parse("7d")))
    assert values[1].achieved is None and not values[1].usable
    assert values[0].achieved == 100.0 and values[0].coverage == 0.5 and not values[0].usable


def test_99_93_percent_gets_99_9_with_the_reason() -> None:
    result = ladder(Decimal("99.9"), _periods(0.0007))
    assert result.recommendation is not None
    assert result.recommendation.objective == Decimal("99.9")
    assert result.recommendation.reason == (
        "the tightest objective met in 3 of the last 3 periods with ≤ 75 % of its budget "
        "spent (worst period: 70 %)"
    )
    assert result.warnings == []
    spent = {r.objective: r.worst for r in result.rungs}
    assert spent[Decimal("99.95")] == pytest.approx(1.4)


def test_unattainable_missed_and_loose_objectives() -> None:
    strained = ladder(Decimal("99.9"), _periods(0.004))
    assert [w.kind for w in strained.warnings] == ["unattainable"]
    assert strained.recommendation == Recommendation(
        Decimal("99"), strained.recommendation.reason if strained.recommendation else ""
    )
    loose = ladder(Decimal("99"), _periods(0.00002))
    assert [w.kind for w in loose.warnings] == ["loose"]
    assert loose.recommendation is not None and loose.recommendation.objective == Decimal("99.99")
    below = ladder(Decimal("99"), _periods(0.03))  # 97 %: below the whole ladder
    assert below.recommendation is not None
    assert below.recommendation.objective == Decimal("96")  # 3 % errors = 75 % of a 4 % budget


def test_without_a_whole_period_there_is_no_recommendation() -> None:
    result = ladder(Decimal("99.9"), _periods(0.001, days=5))
    assert result.recommendation is None
    assert [w.kind for w in result.warnings] == ["no_data"]
    assert "shorter than one period" in result.warnings[0].message


def _row(policy: str, detected: int, detections: int, true: int) -> PolicyRow:
    score = PolicyScore(policy, detections, true, 1, detected, (60.0,) * detected, ())
    return PolicyRow(policy, score, detections, 0)


def test_the_best_policy_catches_more_then_pages_less_and_ties_keep_the_current() -> None:
    current = _row("current", 1, 5, 1)
    assert choose([current, _row("quiet", 0, 0, 0)]).best is current  # misses the incident
    assert choose([current, _row("same", 1, 5, 1)]).best is current
    assert choose([current, _row("fewer", 1, 1, 1)]).best.policy == "fewer"


def test_policy_variants_skip_what_equals_the_current_policy() -> None:
    slo = events_slo(period="28d")
    names = [None if v is None else v.alerting for v in policy_variants(slo)]
    # default: no override to drop; factors-28d equals the shares on a 28d period.
    assert names[1] is None and names[2] is None
    assert names[3] is not None and names[4] is not None


SPEC = """\
# payments — reviewed quarterly
apiVersion: slo-engine/v1
service: pay
slos:
  - name: availability
    objective: 99.9   # agreed with product
    sli:
      events: {bad: 'sum(rate(e[{{window}}]))', total: 'sum(rate(t[{{window}}]))'}
    alerting:
      labels: {team: pay}

  - name: fast
    objective: "99.5"
    sli:
      events:
        bad: sum(rate(e[{{window}}]))
        total: sum(rate(t[{{window}}]))
    alerting:
      burn_rates:
        - {severity: page, long_window: 1h, short_window: 5m, factor: 14.4}
      low_traffic:
        enabled: true
# trailing comment
"""


def _item(text: str, k: int):  # type: ignore[no-untyped-def]
    return parse_yaml(text).documents[0].data["slos"][k]


def test_text_edits_keep_everything_else() -> None:
    edits = TextEdits(SPEC)
    first, second = _item(SPEC, 0), _item(SPEC, 1)
    edits.replace_scalar(first.value_marks["objective"], "99.5")
    edits.replace_scalar(second.value_marks["objective"], '"99"')
    edits.set_key(first, ("alerting", "low_traffic", "confidence"), "0.999", "why")
    edits.set_key(second, ("alerting", "low_traffic", "confidence"), "0.999")
    edits.set_key(second, ("alerting", "burn_rates"), ["{a: 1}", "{b: 2}"])
    new = edits.apply()
    assert new == SPEC.replace("99.9   #", "99.5   #").replace('"99.5"', '"99"').replace(
        "      labels: {team: pay}\n",
        "      labels: {team: pay}\n      # why\n      low_traffic:\n        confidence: 0.999\n",
    ).replace(
        "        - {severity: page, long_window: 1h, short_window: 5m, factor: 14.4}\n",
        "        - {a: 1}\n        - {b: 2}\n",
    ).replace("        enabled: true\n", "        enabled: true\n        confidence: 0.999\n")


def test_text_edits_refuse_flow_mappings_and_delete_keys() -> None:
    edits = TextEdits(SPEC)
    first = _item(SPEC, 0)
    with pytest.raises(EditError):
        edits.set_key(first["alerting"]["labels"], ("x",), "1")
    edits.delete_key(_item(SPEC, 1)["alerting"], "burn_rates")
    assert "burn_rates" not in edits.apply() and "low_traffic:" in edits.apply()


PYRRA = """\
apiVersion: pyrra.dev/v1alpha1
kind: ServiceLevelObjective
metadata:
  name: http-errors
  labels:
    pyrra.dev/service: checkout
spec:
  target: "99.5" # Pyrra's own
  window: 28d
  indicator:
    ratio:
      errors:
        metric: http_requests_total{job="checkout",code=~"5.."}
      total:
        metric: http_requests_total{job="checkout"}
"""


def _advice(slos: list, objective: str) -> Advice:  # type: ignore[type-arg]
    items = []
    for slo in slos:
        rec = Recommendation(Decimal(objective), "test")
        items.append(SLOAdvice(slo, ladder=LadderResult([], rec, [])))
    plan = ReplayPlan(Duration.parse("5m"), 0.0, 1.0, Duration(0))
    return Advice(plan=plan, days=1, slos=items, reference="labels", fleet=None)


def test_patches_edit_native_specs_and_only_show_foreign_ones(tmp_path: Path) -> None:
    (tmp_path / "pay.yaml").write_text(SPEC)
    (tmp_path / "checkout.yaml").write_text(PYRRA)
    loaded = load_specs([tmp_path])
    assert loaded.errors == []
    patches = {p.path.name: p for p in plan_patches(_advice(loaded.slos, "99.95"))}
    check_patches(list(patches.values()), _advice(loaded.slos, "99.95"))
    pay, checkout = patches["pay.yaml"], patches["checkout.yaml"]
    assert pay.native and pay.valid and pay.notes == []
    assert pay.new == SPEC.replace("99.9   #", "99.95   #").replace('"99.5"', '"99.95"')
    assert not checkout.native
    assert checkout.new == PYRRA.replace('"99.5" #', '"99.95" #')
    assert (
        '-  target: "99.5" # Pyrra\'s own\n+  target: "99.95" # Pyrra\'s own\n' in checkout.diff()
    )
