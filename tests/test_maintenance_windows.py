"""Maintenance windows without I/O: the cron matcher (DST in a named zone), spec validation
with located errors, the per-step exclusion mask, and alert muting in the incident engine."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pytest
from harness.api_runtime import evaluation
from harness.incidents import T0, make_alert

from engine.alerting.alerts import alerts_from_evaluation
from engine.api.status_maintenance import MaintenanceNote
from engine.api.status_page import build_view, render_status_page
from engine.evaluation.maintenance import (
    grace,
    kept_share,
    muted_by_maintenance,
    ring_kept_share,
    touches_maintenance,
)
from engine.incidents.config import IncidentConfig
from engine.incidents.engine import IncidentEngine
from engine.spec.cron import CronError, CronSchedule
from engine.spec.loader import load_specs

PARIS = ZoneInfo("Europe/Paris")


def _utc(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


def _paris_starts(cron: str, begin: str, end: str) -> list[str]:
    schedule = CronSchedule.parse(cron)
    return [
        datetime.fromtimestamp(t, PARIS).isoformat()
        for t in schedule.starts(PARIS, _utc(begin), _utc(end))
    ]


# ------------------------------------------------------------------ cron


def test_cron_fields_ranges_steps_and_names():
    s = CronSchedule.parse("*/15 2-4 * JAN-MAR MON,fri")
    assert s.minutes == {0, 15, 30, 45} and s.hours == {2, 3, 4}
    assert s.months == {1, 2, 3} and s.weekdays == {1, 5}
    assert s.matches(datetime(2026, 2, 6, 3, 45))  # a Friday
    assert not s.matches(datetime(2026, 2, 7, 3, 45))  # a Saturday
    assert not s.matches(datetime(2026, 4, 6, 3, 45))  # April
    # 7 is Sunday too; both day fields restricted: either matches (classic cron).
    assert CronSchedule.parse("0 0 * * 7").weekdays == {0}
    either = CronSchedule.parse("0 0 1 * MON")
    assert either.matches(datetime(2026, 3, 1))  # the 1st, a Sunday
    assert either.matches(datetime(2026, 3, 2))  # a Monday
    assert not either.matches(datetime(2026, 3, 3))


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("0 2 * *", "has 4 fields"),
        ("60 2 * * *", "minute: 60 is outside 0-59"),
        ("0 2 * * FUNDAY", "day of week: 'FUNDAY' is not a number or a name"),
        ("0 5-2 * * *", "hour: range '5-2' runs backwards"),
        ("*/0 * * * *", "step '0' must be a positive number"),
    ],
)
def test_cron_errors_name_the_field(expression: str, message: str):
    with pytest.raises(CronError, match=message):
        CronSchedule.parse(expression)


def test_weekly_window_keeps_paris_wall_clock_across_both_dst_changes():
    # Every Sunday 02:30 Paris time, over the spring-forward (29 March 2026: 02:00 → 03:00)
    # and fall-back (25 October 2026: 03:00 → 02:00) weekends.
    spring = _paris_starts("30 2 * * SUN", "2026-03-21T00:00", "2026-04-06T00:00")
    assert spring == [
        "2026-03-22T02:30:00+01:00",
        "2026-03-29T03:30:00+02:00",  # 02:30 does not exist that night: one hour late
        "2026-04-05T02:30:00+02:00",
    ]
    autumn = _paris_starts("30 2 * * SUN", "2026-10-17T00:00", "2026-11-02T00:00")
    assert autumn == [
        "2026-10-18T02:30:00+02:00",
        "2026-10-25T02:30:00+02:00",  # 02:30 happens twice: the window starts once
        "2026-11-01T02:30:00+01:00",
    ]


# ------------------------------------------------------------------ spec


SPEC = """apiVersion: slo-engine/v1
service: api
slos:
  - name: availability
    objective: 99.9
    sli:
      events:
        bad: sum(rate(errors_total[{{{{window}}}}]))
        total: sum(rate(requests_total[{{{{window}}}}]))
maintenance:
{windows}
"""


def _load(tmp_path: Path, windows: str):
    path = tmp_path / "api.yaml"
    path.write_text(SPEC.format(windows=windows))
    return load_specs([path])


def test_spec_windows_reach_every_slo(tmp_path: Path):
    loaded = _load(
        tmp_path,
        "  - {start: '2026-12-06T01:00:00Z', end: '2026-12-06T03:00:00+01:00', reason: db}\n"
        "  - {cron: '0 2 * * SUN', duration: 2h, timezone: Europe/Paris}",
    )
    assert not loaded.errors, loaded.errors
    (slo,) = loaded.slos
    fixed, weekly = slo.maintenance
    assert fixed.reason == "db" and fixed.intervals(0, 2e9) == [
        (_utc("2026-12-06T01:00"), _utc("2026-12-06T02:00"))
    ]
    assert weekly.intervals(_utc("2026-12-06T00:00"), _utc("2026-12-07T00:00")) == [
        (_utc("2026-12-06T01:00"), _utc("2026-12-06T03:00"))
    ]


@pytest.mark.parametrize(
    ("window", "message"),
    [
        ("{start: '2026-12-06T03:00:00Z', end: '2026-12-06T01:00:00Z'}", "must be after start"),
        ("{start: '2026-12-06T03:00:00', end: '2026-12-06T04:00:00Z'}", "has no UTC offset"),
        ("{start: 'tomorrow', end: '2026-12-06T04:00:00Z'}", "is not an RFC 3339 time"),
        ("{start: '2026-12-01T00:00:00Z', end: '2026-12-09T00:00:00Z'}", "longer than 7d"),
        ("{cron: '0 2 * * SUN', duration: 8d}", "longer than 7d"),
        ("{cron: '0 2 * * SUN', duration: 2h, timezone: Mars/Olympus}", "not an IANA time zone"),
        ("{cron: '0 25 * * SUN', duration: 2h}", "hour: 25 is outside 0-23"),
        ("{cron: '0 2 * * SUN', duration: 2h, every: week}", "every"),
    ],
)
def test_bad_windows_are_located_errors(tmp_path: Path, window: str, message: str):
    loaded = _load(tmp_path, f"  - {window}")
    assert loaded.errors, "expected a validation error"
    text = "\n".join(str(e) for e in loaded.errors)
    assert message in text
    assert "api.yaml:11:" in text and "window" in text


# ------------------------------------------------------------------ masks


def _slo(tmp_path: Path, windows: str):
    loaded = _load(tmp_path, windows)
    assert not loaded.errors, loaded.errors
    return loaded.slos[0]


def test_kept_share_excludes_whole_and_partial_steps(tmp_path: Path):
    slo = _slo(tmp_path, "  - {start: '2026-12-06T01:00:00Z', end: '2026-12-06T01:30:00Z'}")
    plain = replace(slo, name="other", maintenance=())
    hour = _utc("2026-12-06T00:00")
    ends = hour + np.arange(1, 5) * 1800.0  # 00:30, 01:00, 01:30, 02:00
    kept = kept_share([slo, plain], ends, 1800.0)
    assert kept is not None
    assert kept.tolist() == [[1.0, 1.0, 0.0, 1.0], [1.0, 1.0, 1.0, 1.0]]
    # A coarse (1h) step cut in half by the window keeps its outside half.
    coarse = kept_share([slo], np.array([hour + 7200.0]), 3600.0)
    assert coarse is not None and coarse.tolist() == [[0.5]]
    assert kept_share([plain], ends, 1800.0) is None


def test_ring_share_follows_the_cache_slots(tmp_path: Path):
    slo = _slo(tmp_path, "  - {start: '2026-12-06T01:00:00Z', end: '2026-12-06T01:02:00Z'}")
    end = int(_utc("2026-12-06T01:03"))
    ring = ring_kept_share([slo], end, 5, 60)
    assert ring is not None
    by_time = {end - k * 60: ring[((end - k * 60) // 60) % 5, 0] for k in range(5)}
    # Steps end at 00:59 … 01:03; those ending 01:01 and 01:02 lie inside the window.
    assert [by_time[end - k * 60] for k in range(4, -1, -1)] == [1.0, 1.0, 0.0, 0.0, 1.0]


def test_instant_path_is_avoided_only_when_a_window_meets_the_period(tmp_path: Path):
    slo = _slo(tmp_path, "  - {start: '2026-12-06T01:00:00Z', end: '2026-12-06T01:30:00Z'}")
    assert touches_maintenance([slo], _utc("2026-12-20T00:00"))  # inside the 30d period
    assert not touches_maintenance([slo], _utc("2027-01-10T00:00"))  # aged out
    assert not touches_maintenance([slo], _utc("2026-12-05T00:00"))  # not begun


# ------------------------------------------------------------------ muting


def test_alerts_are_muted_in_the_window_and_its_grace(tmp_path: Path):
    slo = _slo(tmp_path, "  - {start: '2026-12-06T01:00:00Z', end: '2026-12-06T02:00:00Z'}")
    start, end = _utc("2026-12-06T01:00"), _utc("2026-12-06T02:00")
    after = grace(slo).seconds
    assert after == 1800  # the default page rules' longest short window (30m)
    assert not muted_by_maintenance(slo, start - 1)
    assert muted_by_maintenance(slo, start) and muted_by_maintenance(slo, end + after - 1)
    assert not muted_by_maintenance(slo, end + after)
    (inside,) = alerts_from_evaluation(evaluation(slo, start + 60, status="page"))
    (outside,) = alerts_from_evaluation(evaluation(slo, end + after, status="page"))
    assert inside.maintenance and not outside.maintenance
    assert inside.fingerprint == outside.fingerprint  # same alert, only muted


def test_incident_engine_suppresses_maintenance_alerts_with_its_reason():
    engine = IncidentEngine(IncidentConfig(receivers=[{"name": "oncall"}]))
    muted = replace(make_alert(), maintenance=True)
    for i in range(5):
        decision = engine.observe(T0 + i * 60, [muted])
        assert decision.notifications == [] and decision.incidents == []
        assert [s.reason for s in decision.suppressed] == ["maintenance"]
    # The window is over: the same alert pages.
    decision = engine.observe(T0 + 300, [make_alert()])
    assert [n.event for n in decision.notifications] == ["triggered"]


# ------------------------------------------------------------------ status page


def test_status_page_announces_then_shows_the_window(tmp_path: Path):
    slo = _slo(
        tmp_path,
        "  - {start: '2026-12-06T01:00:00Z', end: '2026-12-06T03:00:00Z', reason: '<db> upgrade'}",
    )
    start = _utc("2026-12-06T01:00")

    def page(at: float) -> tuple[object, str]:
        view = build_view([evaluation(slo, at)], [], lambda i: "", at, True)
        return view.services[0].maintenance, render_status_page(view)

    far, html = page(start - 25 * 3600)
    assert far is None and "maintenance-when" not in html
    soon, html = page(start - 3600)
    assert soon == MaintenanceNote(
        False,
        "Maintenance scheduled",
        "2026-12-06 01:00 UTC to 2026-12-06 03:00 UTC — <db> upgrade",
    )
    assert "Maintenance scheduled" in html and "&lt;db&gt; upgrade" in html
    now, html = page(start + 600)
    assert now == MaintenanceNote(
        True, "Maintenance in progress", "until 2026-12-06 03:00 UTC — <db> upgrade"
    )
    assert 'class="maintenance maintenance-active"' in html
    after, _ = page(_utc("2026-12-06T03:00"))
    assert after is None
