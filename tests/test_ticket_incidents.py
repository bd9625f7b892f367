"""Issue 15 item 5: per tier, a ticket-level alert opens an incident or only notifies.

Unit tests on the engine with an injected clock (exact notifications: kind, event, receiver,
dedup key), the config key's validation, and a backtest over a real Prometheus.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from harness.incidents import T0, make_alert
from pydantic import ValidationError
from test_notify_receiver import always, receiver_fixture  # noqa: F401

from engine.daemon.config import ConfigError, load_config
from engine.incidents.config import IncidentConfig
from engine.incidents.engine import IncidentEngine
from engine.incidents.state import EngineState

MIN = 60.0
NOTIFY_STANDARD = {"standard": "notify"}


def _engine(ticket_incidents: dict[str, str] | None = None, **overrides) -> IncidentEngine:
    overrides.setdefault("escalation", [])
    overrides.setdefault("recovery_time_objectives", {})
    overrides.setdefault("update_cadence", {})
    receivers = [
        {"name": "oncall"},
        {"name": "pager", "severities": ["SEV1", "SEV2"]},
        {"name": "tickets", "severities": ["SEV3", "SEV4"]},
    ]
    return IncidentEngine(
        IncidentConfig(receivers=receivers, ticket_incidents=ticket_incidents or {}, **overrides)
    )


def _sent(decisions) -> list[tuple[str, str, str, str]]:
    return [(n.kind, n.event, n.receiver, n.dedup_key) for d in decisions for n in d.notifications]


def _ticket(tier: str = "standard", **kw):
    return make_alert(severity="ticket", tier=tier, short_error_ratio=0.002, **kw)


# ------------------------------------------------------------------ the default


def test_default_opens_an_incident_on_every_tier() -> None:
    assert IncidentConfig().ticket_incidents.model_dump() == {
        "critical": "incident",
        "important": "incident",
        "standard": "incident",
    }
    engine = _engine()
    decision = engine.observe(T0, [_ticket()])
    assert _sent([decision]) == [
        ("incident", "triggered", "oncall", "INC-2024-0001"),
        ("incident", "triggered", "tickets", "INC-2024-0001"),
    ]
    assert [i.severity.value for i in engine.state.incidents.values()] == ["SEV3"]


# ------------------------------------------------------------------ notify only


def test_notify_sends_a_notice_without_an_incident_and_resolves_it() -> None:
    engine = _engine(NOTIFY_STANDARD, repeat_interval="1h", resolve_after="15m")
    alert = _ticket()
    key = f"ticket:{alert.fingerprint}"
    first = engine.observe(T0, [alert])
    assert _sent([first]) == [
        ("ticket", "triggered", "oncall", key),
        ("ticket", "triggered", "tickets", key),
    ]
    note = first.notifications[0]
    assert note.incident["id"] == key and note.incident["severity"] == "SEV3"
    assert note.incident["status"] == "investigating" and note.incident["slos"] == [
        "api/availability"
    ]
    assert "No incident was opened" in note.message
    assert engine.state.incidents == {} and engine.state.sequences == {}
    assert first.incidents == [] and first.timeline == []

    # Dedup: firing on for 59 minutes sends nothing more.
    quiet = [engine.observe(T0 + i * MIN, [alert]) for i in range(1, 60)]
    assert _sent(quiet) == []
    # repeat_interval: a reminder an hour after the notice, to the same receivers.
    repeat = engine.observe(T0 + 60 * MIN, [alert])
    assert _sent([repeat]) == [
        ("ticket", "triggered", "oncall", key),
        ("ticket", "triggered", "tickets", key),
    ]
    assert repeat.notifications[0].title.startswith("[reminder]")

    # Clear: nothing until it has been clear for resolve_after, then one resolve.
    cleared = [engine.observe(T0 + (61 + i) * MIN, []) for i in range(15)]
    assert _sent(cleared) == []
    resolved = engine.observe(T0 + 76 * MIN, [])
    assert _sent([resolved]) == [
        ("ticket", "resolved", "oncall", key),
        ("ticket", "resolved", "tickets", key),
    ]
    assert resolved.notifications[0].incident["status"] == "resolved"
    assert resolved.notifications[0].incident["resolved_at"] == "2024-03-01T01:16:00.000Z"
    assert engine.state.incidents == {}
    # The notice is over; firing again is a new notice.
    assert engine.state.alerts[alert.fingerprint].notice is None
    again = engine.observe(T0 + 90 * MIN, [alert])
    assert [e for _, e, _, _ in _sent([again])] == ["triggered", "triggered"]
    assert len({n.id for d in (first, repeat, resolved, again) for n in d.notifications}) == 8


def test_refire_within_resolve_after_is_the_same_notice() -> None:
    engine = _engine(NOTIFY_STANDARD)
    alert = _ticket()
    engine.observe(T0, [alert])
    flap = [engine.observe(T0 + MIN, []), engine.observe(T0 + 10 * MIN, [alert])]
    assert _sent(flap) == []
    later = [engine.observe(T0 + (11 + i) * MIN, []) for i in range(16)]
    assert [e for _, e, _, _ in _sent(later)] == ["resolved", "resolved"]


def test_a_flapping_notice_neither_repeats_nor_resolves_until_it_settles() -> None:
    engine = _engine(NOTIFY_STANDARD, repeat_interval="10m", resolve_after="5m")
    alert = _ticket()
    first = engine.observe(T0, [alert])
    # On and off every minute for 20 minutes: one notice, no resolve between the flaps
    # (each clear is shorter than resolve_after), and flapping by the end.
    flaps = [engine.observe(T0 + i * MIN, [alert] if i % 2 == 0 else []) for i in range(1, 21)]
    assert [e for _, e, _, _ in _sent([first, *flaps])] == ["triggered", "triggered"]
    assert engine.state.flap[alert.fingerprint].flapping
    # Clear from minute 21: no resolve while it still counts as flapping, one once it stops.
    quiet, t = [], 21
    while engine.state.flap[alert.fingerprint].flapping:
        quiet.append(engine.observe(T0 + t * MIN, []))
        t += 1
    assert t - 21 > 5  # flapping outlasted resolve_after
    assert _sent(quiet[:-1]) == []
    settled = [*quiet[-1:], engine.observe(T0 + t * MIN, [])]
    assert [e for _, e, _, _ in _sent(settled)] == ["resolved", "resolved"]


def test_a_silenced_ticket_notifies_only_once_the_silence_ends() -> None:
    engine = _engine(NOTIFY_STANDARD)
    alert = _ticket()
    engine.add_silence(T0, ["slo=api/availability"], T0, T0 + 30 * MIN, "sre", "maintenance")
    during = [engine.observe(T0 + i * MIN, [alert]) for i in range(30)]
    assert _sent(during) == []
    after = engine.observe(T0 + 31 * MIN, [alert])
    assert [(k, e, r) for k, e, r, _ in _sent([after])] == [
        ("ticket", "triggered", "oncall"),
        ("ticket", "triggered", "tickets"),
    ]


def test_tiers_are_independent_and_sev1_always_opens_an_incident() -> None:
    engine = _engine(NOTIFY_STANDARD)
    decision = engine.observe(T0, [_ticket(tier="critical", service="pay")])
    assert {k for k, _, _, _ in _sent([decision])} == {"incident"}
    # A critical tier set to notify still opens an incident for a ticket the runbook makes
    # SEV1 (its error budget is exhausted).
    engine = _engine({"critical": "notify"})
    decision = engine.observe(T0, [_ticket(tier="critical", error_budget_remaining=-0.1)])
    assert _sent([decision]) == [
        ("incident", "triggered", "oncall", "INC-2024-0001"),
        ("incident", "triggered", "pager", "INC-2024-0001"),
    ]


def test_a_notice_raised_to_sev1_ends_and_opens_an_incident() -> None:
    engine = _engine({"critical": "notify"})
    engine.observe(T0, [_ticket(tier="critical")])
    decision = engine.observe(T0 + MIN, [_ticket(tier="critical", error_budget_remaining=-0.01)])
    key = f"ticket:{_ticket(tier='critical').fingerprint}"
    assert _sent([decision]) == [
        ("ticket", "resolved", "oncall", key),
        ("ticket", "resolved", "tickets", key),
        ("incident", "triggered", "oncall", "INC-2024-0001"),
        ("incident", "triggered", "pager", "INC-2024-0001"),
    ]
    assert "superseded by a SEV1" in decision.notifications[0].message


def test_a_ticket_joins_an_open_incident_of_its_service() -> None:
    engine = _engine(NOTIFY_STANDARD)
    engine.observe(T0, [make_alert(slo="availability", tier="standard")])
    joined = engine.observe(
        T0 + MIN,
        [make_alert(slo="availability", tier="standard"), _ticket(slo="freshness")],
    )
    assert joined.notifications == []
    (incident,) = engine.state.incidents.values()
    assert incident.slo_ids == ["api/availability", "api/freshness"]


def test_an_open_notice_survives_the_state_round_trip() -> None:
    engine = _engine(NOTIFY_STANDARD)
    alert = _ticket()
    engine.observe(T0, [alert])
    state = EngineState.from_json(engine.state.to_json())
    assert state.alerts[alert.fingerprint].notice == engine.state.alerts[alert.fingerprint].notice
    restarted = IncidentEngine(engine.config, state)
    assert _sent([restarted.observe(T0 + MIN, [alert])]) == []
    resolved = [restarted.observe(T0 + (2 + i) * MIN, []) for i in range(16)]
    assert [e for _, e, _, _ in _sent(resolved)] == ["resolved", "resolved"]


# ------------------------------------------------------------------ configuration


def test_config_takes_a_partial_map_and_rejects_bad_values() -> None:
    config = IncidentConfig(ticket_incidents={"standard": "notify"})
    assert config.ticket_incidents.mode("standard") == "notify"
    assert config.ticket_incidents.mode("critical") == "incident"
    assert config.ticket_incidents.mode("unknown-tier") == "incident"
    with pytest.raises(ValidationError) as caught:
        IncidentConfig(ticket_incidents={"standard": "page"})
    (error,) = caught.value.errors()
    assert error["loc"] == ("ticket_incidents", "standard")
    with pytest.raises(ValidationError) as caught:
        IncidentConfig(ticket_incidents={"low": "notify"})
    assert caught.value.errors()[0]["loc"] == ("ticket_incidents", "low")


def test_daemon_config_error_is_located(tmp_path: Path) -> None:
    path = tmp_path / "config.yml"
    path.write_text(
        "specs: specs\nprometheus_url: http://127.0.0.1:9090\nstate_dir: state\n"
        "incidents:\n  ticket_incidents:\n    critical: incident\n    standard: notfy\n"
    )
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    (problem,) = caught.value.problems
    assert problem.startswith(f"{path}:7:15: ")
    assert "incidents.ticket_incidents.standard" in problem and "notify" in problem
    path.write_text(path.read_text().replace("notfy", "notify"))
    assert load_config(path).incidents.ticket_incidents.standard == "notify"


# ------------------------------------------------------------------ backtest, real Prometheus

SLOW_BURN_SPEC = """apiVersion: slo-engine/v1
service: reports
tier: standard
slos:
  - name: availability
    objective: 99.9
    sli:
      events:
        bad: sum(rate(http_requests_total{job="reports",code="500"}[{{window}}]))
        total: sum(rate(http_requests_total{job="reports"}[{{window}}]))
"""


REPLAY = 48 * 3600


@pytest.fixture(scope="module")
def slow_burn(module_prometheus_for, tmp_path_factory: pytest.TempPathFactory):
    """The corpus' slow burn (0.5 % errors, 5× the budget rate, for 30 h on a standard-tier
    service) backfilled into a real Prometheus, its history fetched once. Replayed for 48 h,
    past the corpus' 36, so that the ticket clears inside the replay."""
    from corpus.counters import Corpus, write_corpus
    from corpus.scenarios import HISTORY, START, T0, cases

    from engine.backtest.replay import fetch_history, make_plan
    from engine.demo.openmetrics import open_openmetrics
    from engine.source.prometheus import PrometheusSource
    from engine.spec.durations import Duration
    from engine.spec.loader import load_specs

    case = next(c for c in cases() if c.name == "slow burn")
    path = tmp_path_factory.mktemp("slow-burn") / "corpus.om"
    with open_openmetrics(path) as writer:
        write_corpus(
            writer, Corpus(start=T0, duration=HISTORY + REPLAY + 3600, interval=15, jobs=case.jobs)
        )
    prometheus = module_prometheus_for(path)
    spec_dir = tmp_path_factory.mktemp("specs")
    (spec_dir / "reports.yaml").write_text(SLOW_BURN_SPEC)
    loaded = load_specs([spec_dir])
    assert not loaded.errors, loaded.errors
    end = START + REPLAY
    plan = make_plan(loaded.slos, START, end, Duration.parse("1m"), Duration(HISTORY * 1000))
    rates = fetch_history(PrometheusSource(prometheus.url, timeout=60), loaded.slos, plan)
    assert not rates.errors
    return loaded.slos, rates, plan


def _replay(slow_burn, ticket_incidents: dict[str, str]):
    from engine.backtest.replay import replay

    slos, rates, plan = slow_burn
    config = IncidentConfig(receivers=[{"name": "pager"}], ticket_incidents=ticket_incidents)
    return replay(slos, rates, plan, config)


@pytest.mark.prometheus
def test_backtest_slow_burn_opens_an_incident_by_default(slow_burn) -> None:
    result = _replay(slow_burn, {})
    (ticket,) = [a for a in result.alerts if a.severity == "ticket"]
    assert not any(a.severity == "page" for a in result.alerts)
    (incident,) = result.incidents
    assert incident.severity.value == "SEV3" and incident.service == "reports"
    assert incident.opened_at == ticket.start
    assert set(result.notifications) == {incident.id}


@pytest.mark.prometheus
def test_backtest_slow_burn_only_notifies_on_a_notify_tier(slow_burn) -> None:
    result = _replay(slow_burn, {"standard": "notify"})
    (ticket,) = [a for a in result.alerts if a.severity == "ticket"]
    plan = slow_burn[2]
    assert ticket.end is not None and ticket.end + 15 * MIN < plan.end  # cleared, then resolved
    assert result.incidents == []
    (fingerprint,) = [
        fp for fp, (_, severity) in result.fingerprints.items() if severity == "ticket"
    ]
    # One notice at the start, a reminder every 4 h (repeat_interval) while the ticket fires,
    # one resolve 15 min (resolve_after) after it clears.
    repeats = int((ticket.end - ticket.start - 1) // (4 * 3600))
    assert result.notifications == {f"ticket:{fingerprint}": 1 + repeats + 1}


# ------------------------------------------------------------------ delivered to Alertmanager


def test_alertmanager_gets_a_notice_as_an_alert_that_fires_then_resolves(receiver) -> None:
    from engine.notify.alertmanager import ALERTNAME, AlertmanagerNotifier
    from engine.notify.factory import parse_notifier_configs

    engine = _engine(NOTIFY_STANDARD)
    alert = _ticket()
    triggered = engine.observe(T0, [alert]).notifications[0]
    resolved = [engine.observe(T0 + (1 + i) * MIN, []) for i in range(16)][-1].notifications[0]
    assert (triggered.receiver, resolved.receiver, resolved.event) == (
        "oncall",
        "oncall",
        "resolved",
    )
    r = receiver(always(200, b""))
    config = parse_notifier_configs({"oncall": {"type": "alertmanager", "url": r.url}})["oncall"]
    clock = [T0]
    notifier = AlertmanagerNotifier("oncall", config, clock=lambda: clock[0])
    notifier.send(triggered)
    clock[0] = T0 + 16 * MIN
    notifier.send(resolved)
    fired, ended = (request.json() for request in r.requests)
    labels = {
        "alertname": ALERTNAME,
        "incident": f"ticket:{alert.fingerprint}",
        "service": "api",
        "severity": "SEV3",
        "slo": "api/availability",
    }
    assert [a["labels"] for a in fired] == [labels]
    assert fired[0]["startsAt"] == "2024-03-01T00:00:00.000Z"
    assert fired[0]["endsAt"] > "2024-03-01T00:00:00.000Z"
    assert [a["labels"] for a in ended] == [labels]
    assert ended[0]["endsAt"] == "2024-03-01T00:16:00.000Z"
