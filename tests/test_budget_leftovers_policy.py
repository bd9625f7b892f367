"""Budget-policy notices of a calendar SLO are numbered by its calendar period in its zone
(issue 14 leftovers): the same crossing is one notice until local midnight of the 1st, a
crossing in the new month is a new notice, and one month is one period however long."""

from __future__ import annotations

from pathlib import Path

from harness.api_runtime import evaluation

from engine.evaluation.calendar import pin
from engine.incidents.budget_policy import policy_notifications
from engine.spec.durations import Duration
from engine.spec.loader import load_specs

HOUR, DAY = 3600, 86_400
MARCH_1 = 1_709_218_800  # 2024-03-01 00:00 Asia/Tokyo (UTC+9) = 29 Feb 15:00 UTC
FEB_1 = 1_706_713_200  # 2024-02-01 00:00 Asia/Tokyo

SPEC = """apiVersion: slo-engine/v1
service: shop
budget_policy:
  thresholds:
    - consumed: 50
      action: notify
      receivers: [sre-chat]
slos:
  - name: availability
    objective: 99.9
    period: calendar-month
    timezone: Asia/Tokyo
    sli:
      events:
        bad: sum(rate(http_requests_total{job="shop",code="500"}[{{window}}]))
        total: sum(rate(http_requests_total{job="shop"}[{{window}}]))
"""


def _ids(tmp_path: Path, at: float, pinned: bool = False) -> list[str]:
    (tmp_path / "shop.yaml").write_text(SPEC)
    loaded = load_specs([tmp_path])
    assert not loaded.errors, loaded.errors
    slo = loaded.slos[0]
    if pinned:  # the daemon's evaluations carry the period pinned at the instant
        slo = pin(slo, at, Duration.parse("1m"), keep_period=True)
    notes = policy_notifications([evaluation(slo, at, budget=0.3)], at)
    assert [n.receiver for n in notes] == ["sre-chat"]
    return [n.id for n in notes]


def test_notices_are_numbered_by_the_calendar_month_in_its_zone(tmp_path: Path) -> None:
    february = _ids(tmp_path, MARCH_1 - HOUR)  # 23:00 on 29 February in Tokyo
    assert february == [f"budget-policy:shop/availability:50:{FEB_1}:sre-chat"]
    assert _ids(tmp_path, MARCH_1 - 1, pinned=True) == february  # still February there
    # Local midnight of 1 March: a crossing in the new month is told again...
    march = _ids(tmp_path, MARCH_1 + 300)
    assert march == [f"budget-policy:shop/availability:50:{MARCH_1}:sre-chat"]
    # ...and once only for the whole month, 31 days of it (a nominal-length grid would
    # have started a new "period" somewhere inside March).
    assert _ids(tmp_path, MARCH_1 + 31 * DAY - HOUR, pinned=True) == march
    assert _ids(tmp_path, MARCH_1 + 31 * DAY) != march  # 1 April in Tokyo
