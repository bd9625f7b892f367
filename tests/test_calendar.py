"""Calendar periods without a backend: the boundary math (DST included), burn factors that
follow the current period's length, the spec spelling and its located errors, and the
OpenSLO calendar window import."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from engine.evaluation.calendar import PinnedPlans, burn_length, calendar_json, pin
from engine.evaluation.policy import policy_for
from engine.spec.calendar import period_bounds
from engine.spec.durations import Duration
from engine.spec.loader import load_specs

NY = ZoneInfo("America/New_York")
HOUR, DAY = 3600, 86_400
STEP = Duration.parse("1m")


def _local(*parts: int, zone: ZoneInfo = NY) -> float:
    return datetime(*parts, tzinfo=zone).timestamp()  # type: ignore[misc]


def test_a_month_holding_a_dst_change_is_an_hour_off_its_days() -> None:
    # March 2024 in New York: clocks go forward on the 10th, so 31 days less one hour.
    start, end = period_bounds("month", NY, _local(2024, 3, 15, 12))
    assert start == _local(2024, 3, 1) == 1_709_269_200  # 05:00 UTC (EST)
    assert end == _local(2024, 4, 1) == 1_711_944_000  # 04:00 UTC (EDT)
    assert end - start == 31 * DAY - HOUR
    # November: clocks go back, one hour longer.
    start, end = period_bounds("month", NY, _local(2024, 11, 3, 1, 30))
    assert end - start == 30 * DAY + HOUR


def test_boundaries_are_local_midnights_and_belong_to_the_new_period() -> None:
    midnight = _local(2024, 12, 1)
    assert period_bounds("month", NY, midnight)[0] == midnight
    assert period_bounds("month", NY, midnight - 1)[1] == midnight
    # Same UTC instant, another zone: Tokyo is already in December at 15:00 UTC 30 Nov.
    tokyo = ZoneInfo("Asia/Tokyo")
    at = datetime(2024, 11, 30, 15, 30, tzinfo=ZoneInfo("UTC")).timestamp()
    assert period_bounds("month", tokyo, at)[0] == _local(2024, 12, 1, zone=tokyo)
    assert period_bounds("month", NY, at)[0] == _local(2024, 11, 1)


def test_weeks_start_on_monday_and_quarters_in_january_april_july_october() -> None:
    # Sunday 2024-03-10, the DST day itself: the week began Monday the 4th.
    start, end = period_bounds("week", NY, _local(2024, 3, 10, 12))
    assert start == _local(2024, 3, 4) and end == _local(2024, 3, 11)
    assert end - start == 7 * DAY - HOUR
    start, end = period_bounds("quarter", NY, _local(2024, 12, 31, 23, 59))
    assert (start, end) == (_local(2024, 10, 1), _local(2025, 1, 1))
    start, end = period_bounds("quarter", NY, _local(2024, 5, 2))
    assert (start, end) == (_local(2024, 4, 1), _local(2024, 7, 1))


def test_a_skipped_midnight_starts_the_period_at_the_first_instant_of_the_day() -> None:
    # Asunción moved its clocks from 00:00 to 01:00 on Sunday 2023-10-01: October began at
    # 01:00 local (04:00 UTC), and September ended at that same instant.
    asuncion = ZoneInfo("America/Asuncion")
    start, end = period_bounds("month", asuncion, _local(2023, 10, 15, zone=asuncion))
    assert start == 1_696_132_800  # 2023-10-01T04:00:00Z
    assert datetime.fromtimestamp(start, asuncion).hour == 1
    assert period_bounds("month", asuncion, start - 1)[1] == start
    assert end - start == 31 * DAY - HOUR


def _spec(tmp_path: Path, period: str) -> Path:
    (tmp_path / "api.yaml").write_text(
        f"""apiVersion: slo-engine/v1
service: api
slos:
  - name: availability
    objective: 99.9
{period}    sli:
      events:
        bad: sum(rate(errors_total[{{{{window}}}}]))
        total: sum(rate(requests_total[{{{{window}}}}]))
"""
    )
    return tmp_path


def test_burn_factors_scale_with_the_current_month(tmp_path: Path) -> None:
    loaded = load_specs([_spec(tmp_path, "    period: calendar-month\n    timezone: UTC\n")])
    assert not loaded.errors, loaded.errors
    (slo,) = loaded.slos
    assert str(slo.period) == "31d"  # the nominal length (rules)
    utc = ZoneInfo("UTC")
    february = pin(slo, _local(2026, 2, 10, zone=utc), STEP)
    january = pin(slo, _local(2026, 1, 10, zone=utc), STEP)
    assert burn_length(february) == Duration.parse("28d")
    assert burn_length(january) == Duration.parse("31d")
    # The 1h page rule spends 2 % of the budget: factor = 0.02 × period ÷ 1h.
    page = {str(p.rules[0].long_window): p.rules[0].factor for p in [policy_for(february)]}
    assert page == {"1h": Decimal("13.44")}
    assert policy_for(january).rules[0].factor == Decimal("14.88")
    assert policy_for(slo).rules[0].factor == Decimal("14.88")  # unpinned: nominal
    # Budget window: (1 Feb, 10 Feb 00:00]; time left: the rest of February.
    assert february.period == Duration.parse("9d")
    shown = calendar_json(february, _local(2026, 2, 10, zone=utc))
    assert shown == {
        "period": "calendar-month",
        "timezone": "UTC",
        "start": "2026-02-01T00:00:00Z",
        "end": "2026-03-01T00:00:00Z",
        "length": "28d",
        "remaining_seconds": 19 * DAY,
    }


def test_a_rolling_slo_is_not_pinned(tmp_path: Path) -> None:
    (slo,) = load_specs([_spec(tmp_path, "    period: 28d\n")]).slos
    assert pin(slo, 1e9, STEP) is slo and calendar_json(slo, 1e9) is None


@pytest.mark.parametrize(
    ("period", "line", "message"),
    [
        (
            "    period: calendar-month\n    timezone: Mars/Olympus\n",
            7,
            "'timezone' 'Mars/Olympus' is not an IANA time zone",
        ),
        ("    period: calendar-year\n", 6, "'period' 'calendar-year' is not a calendar period"),
        ("    period: 28d\n    timezone: UTC\n", 7, "'timezone' applies to calendar periods only"),
        (
            "    period: 31d\n    calendar: {kind: month}\n",
            7,
            "'calendar' is not written directly",
        ),
    ],
)
def test_bad_calendar_periods_are_located(
    tmp_path: Path, period: str, line: int, message: str
) -> None:
    loaded = load_specs([_spec(tmp_path, period)])
    assert not loaded.slos
    (error,) = loaded.errors
    assert f"api.yaml:{line}:" in str(error) and message in str(error), str(error)


OPENSLO = """apiVersion: openslo/v1
kind: SLO
metadata:
  name: availability
spec:
  service: shop
  indicator:
    metadata:
      name: errors
    spec:
      ratioMetric:
        counter: true
        bad:
          metricSource:
            type: Prometheus
            spec:
              query: http_requests_total{job="shop",code="500"}
        total:
          metricSource:
            type: Prometheus
            spec:
              query: http_requests_total{job="shop"}
  budgetingMethod: Occurrences
  timeWindow:
    - duration: DURATION
      isRolling: false
      calendar:
        startTime: START
        timeZone: ZONE
  objectives:
    - target: 0.999
"""


def _openslo(tmp_path: Path, duration: str, start: str, zone: str):
    text = OPENSLO.replace("DURATION", duration).replace("START", start).replace("ZONE", zone)
    (tmp_path / "shop.yaml").write_text(text)
    return load_specs([tmp_path])


@pytest.mark.parametrize(
    ("duration", "start", "kind", "nominal"),
    [
        ("1M", "2024-01-01 00:00:00", "month", "31d"),
        ("1w", "2024-01-01 00:00:00", "week", "7d"),  # a Monday
        ("1Q", "2024-04-01 00:00:00", "quarter", "92d"),
    ],
)
def test_openslo_calendar_windows_import(
    tmp_path: Path, duration: str, start: str, kind: str, nominal: str
) -> None:
    loaded = _openslo(tmp_path, duration, start, "Europe/Berlin")
    assert not loaded.errors, loaded.errors
    (slo,) = loaded.slos
    assert slo.calendar is not None
    assert (slo.calendar.kind, slo.calendar.timezone) == (kind, "Europe/Berlin")
    assert str(slo.period) == nominal


@pytest.mark.parametrize(
    ("duration", "start", "zone", "line", "message"),
    [
        ("1M", "2024-01-01 00:00:00", "Nowhere/City", 29, "timeZone 'Nowhere/City' is not"),
        ("1M", "2024-01-15 00:00:00", "UTC", 28, "does not begin a calendar month"),
        ("1w", "2024-01-02 00:00:00", "UTC", 28, "does not begin a calendar week"),
        ("2M", "2024-01-01 00:00:00", "UTC", 25, "is not a week, month or quarter"),
    ],
)
def test_openslo_calendar_errors_are_located(
    tmp_path: Path, duration: str, start: str, zone: str, line: int, message: str
) -> None:
    loaded = _openslo(tmp_path, duration, start, zone)
    assert not loaded.slos
    (error,) = loaded.errors
    assert f"shop.yaml:{line}:" in str(error) and message in str(error), str(error)


def test_the_daemon_replans_only_when_a_period_turns_over(tmp_path: Path) -> None:
    (slo,) = load_specs([_spec(tmp_path, "    period: calendar-week\n")]).slos
    plans, built = PinnedPlans(), []
    base = object()
    monday = _local(2026, 3, 2, zone=ZoneInfo("UTC"))
    for at in (monday + HOUR, monday + 2 * HOUR, monday + 7 * DAY, monday + 7 * DAY + 60):
        pinned = [pin(slo, at, STEP, keep_period=True)]
        plans.plan(base, pinned, lambda at=at: built.append(at) or at)
    assert built == [monday + HOUR, monday + 7 * DAY]
    plans.plan(object(), [pin(slo, monday + 7 * DAY, STEP)], lambda: built.append(0))
    assert built[-1] == 0  # a new SLO set (base plan) replans at once
