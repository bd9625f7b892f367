"""The thaw notice (issue 14 leftovers): when a frozen SLO's budget is seen back under its
freeze threshold, the freeze's receivers get one `budget_policy` notice, event `resolved`,
saying releases are unfrozen — in the daemon's outbox, and at a real Alertmanager as the end
of the freeze alert of that threshold."""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from harness.api_runtime import (
    FakeClock,
    SampleSource,
    Shape,
    evaluation,
    sample_runtime,
    spec_documents,
    write_specs,
)
from harness.incidents import T0
from harness.localam import ALERTMANAGER, SKIP_REASON, local_alertmanager

from engine.daemon.policy_since import FreezeWatch
from engine.incidents.budget_policy import policy_notifications, thaw_notifications
from engine.notify.alertmanager import BUDGET_POLICY_ALERTNAME, AlertmanagerNotifier
from engine.notify.factory import parse_notifier_configs
from engine.spec.loader import load_specs

POLICY = {
    "thresholds": [
        {"consumed": 50, "action": "notify", "receivers": ["sre-chat"]},
        {"consumed": 100, "action": "freeze", "receivers": ["release-managers", "am"]},
    ]
}
RECEIVERS = ("sre-chat", "release-managers", "am")
EXHAUSTED = Shape("exhausted", budget=-0.12, recent=(("1h", 1.4), ("71h", 0.5)))
HALF = Shape("ok", budget=0.4, recent=(("1h", 0.2),))
OK = Shape("ok", budget=0.97, recent=(("1h", 0.2),))
DAY = 86_400


def _specs(directory: Path) -> Path:
    documents = spec_documents()
    documents["api.yaml"]["budget_policy"] = POLICY
    return write_specs(directory, documents)


def _slo(tmp_path: Path):
    return next(
        s for s in load_specs([_specs(tmp_path / "specs")]).slos if s.id == "api/availability"
    )


def test_a_thaw_is_told_once_per_freeze_and_not_after_a_blind_spell(tmp_path: Path) -> None:
    slo = _slo(tmp_path)
    watch = FreezeWatch()
    spent, half = evaluation(slo, T0, budget=-0.1), evaluation(slo, T0 + 120, budget=0.4)
    watch.observe([spent], T0)
    watch.observe([evaluation(slo, T0 + 60, status="no_data")], T0 + 60)
    assert watch.thawed == {}  # no data is not a thaw: the gate stayed closed
    watch.observe([half], T0 + 120)
    assert list(watch.thawed) == ["api/availability"] and watch.thawed[slo.id].at == T0
    notes = thaw_notifications([half], {k: v.at for k, v in watch.thawed.items()}, T0 + 120)
    assert [(n.id, n.receiver, n.event, n.kind) for n in notes] == [
        (f"budget-policy:api/availability:100:thawed:{int(T0)}:{r}", r, "resolved", "budget_policy")
        for r in ("release-managers", "am")
    ]
    note = notes[0]
    assert note.title == (
        "[budget] api/availability: releases unfrozen — 60.0% of the error budget consumed, "
        "below the freeze at 100%"
    )
    assert note.dedup_key == "budget-policy:api/availability"
    assert note.incident["status"] == "resolved" and note.incident["policy_action"] == "freeze"
    assert note.incident["policy_threshold_percent"] == 100
    assert "releases of api are no longer held" in note.message
    watch.observe([half], T0 + 180)
    assert watch.thawed == {}  # told once: the next cycle has nothing to thaw


@pytest.fixture
def daemon(tmp_path: Path):
    source = SampleSource(T0, {"api/availability": EXHAUSTED, "api/latency-p95": OK})
    clock = FakeClock(T0)
    specs = _specs(tmp_path / "specs")
    runtime = sample_runtime(tmp_path, clock, T0, specs=specs, source=source, receivers=RECEIVERS)
    yield runtime, source, clock
    runtime.close()


def test_the_daemon_queues_the_thaw_when_the_budget_recovers(daemon) -> None:
    runtime, source, clock = daemon

    def policy_items() -> list[tuple[str, str, str]]:
        items = runtime.store.outbox_items()
        return sorted(
            (i.notification.receiver, i.notification.event, i.notification.id)
            for i in items
            if i.notification.kind == "budget_policy"
        )

    frozen = policy_items()
    assert {(r, e) for r, e, _ in frozen} == {
        ("sre-chat", "triggered"),
        ("release-managers", "triggered"),
        ("am", "triggered"),
    }
    # Forty days on, the spent history has left the 30-day period: half the budget is left.
    later = T0 + 40 * DAY
    source.at, clock.now = later, later
    source.shapes["api/availability"] = HALF
    runtime.run_cycle(later)
    states = {r.slo.id: r.error_budget_remaining for r in runtime.slo_results()}
    assert states["api/availability"] == pytest.approx(0.4, abs=0.02)
    thawed = [item for item in policy_items() if item not in frozen]
    assert [(r, e) for r, e, _ in thawed if e == "resolved"] == [
        ("am", "resolved"),
        ("release-managers", "resolved"),
    ]
    assert all(f":100:thawed:{int(T0)}:" in i for _, e, i in thawed if e == "resolved")
    runtime.run_cycle(later + 60)  # the next cycle does not tell it again
    assert len([i for i in policy_items() if i[1] == "resolved"]) == 2


@pytest.fixture
def alertmanager(tmp_path: Path) -> Iterator[str]:
    if ALERTMANAGER is None:
        pytest.skip(SKIP_REASON)
    config = "route:\n  receiver: blackhole\n  group_wait: 1h\nreceivers:\n  - name: blackhole\n"
    with local_alertmanager(config, tmp_path) as url:
        yield url


def _budget_alerts(url: str) -> list[dict]:
    with urllib.request.urlopen(url + "/api/v2/alerts?active=true", timeout=5) as response:
        listed = json.loads(response.read())
    return [a for a in listed if a["labels"]["alertname"] == BUDGET_POLICY_ALERTNAME]


@pytest.mark.alertmanager
def test_real_alertmanager_ends_the_freeze_alert_on_thaw(alertmanager, tmp_path: Path) -> None:
    slo = _slo(tmp_path)
    config = parse_notifier_configs(
        {"am": {"type": "alertmanager", "url": alertmanager, "resend_interval": "1m"}}
    )["am"]
    am = AlertmanagerNotifier("am", config, clock=time.time)
    now = time.time()
    spent = evaluation(slo, now, budget=-0.1)
    for note in policy_notifications([spent], now):
        if note.receiver == "am":
            am.send(note)
    assert [a["labels"]["action"] for a in _budget_alerts(alertmanager)] == ["freeze"]
    later = time.time()
    half = evaluation(slo, later, budget=0.4)
    (thaw,) = [n for n in thaw_notifications([half], {slo.id: now}, later) if n.receiver == "am"]
    am.send(thaw)
    assert _budget_alerts(alertmanager) == []
