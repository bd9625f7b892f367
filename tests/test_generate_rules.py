"""Recording and alerting rules: spec in, exact rule text out (golden-style)."""

from __future__ import annotations

import math
from decimal import Decimal
from typing import Any

import pytest
from scipy.special import gammaincinv
from scipy.stats import binom

from engine.evaluation.policy import policy_for
from engine.generate.alert_rules import (
    BURN_ALERT,
    NO_DATA_ALERT,
    alert_rules,
    for_duration,
    release_bound,
)
from engine.generate.pipeline import GenerateError, generate, service_rule_groups
from engine.generate.rules import recording_groups, slo_labels, summed
from engine.spec.models import SLO, ServiceSpec

EVENTS_SLI = {
    "events": {
        "bad": 'sum(rate(http_requests_total{job="api",code=~"5.."}[{{window}}]))',
        "total": 'sum(rate(http_requests_total{job="api"}[{{window}}]))',
    }
}


def make_slo(service: str = "api", **slo: Any) -> SLO:
    spec = {
        "apiVersion": "slo-engine/v1",
        "service": service,
        "tier": "critical",
        "labels": {"team": "web"},
        "depends_on": ["database"],
        "slos": [{"name": "availability", "objective": 99.9, "sli": EVENTS_SLI, **slo}],
    }
    return ServiceSpec.model_validate(spec).slo_records("api.yaml")[0]


def records(rules: list[dict[str, Any]]) -> dict[str, str]:
    return {r["record"]: r["expr"] for r in rules if "record" in r}


def burn_alerts(slo: SLO) -> list[dict[str, Any]]:
    return [r for r in alert_rules(slo) if r["alert"] == BURN_ALERT]


def test_windowed_rates_are_recorded_separately_for_bad_and_total() -> None:
    sli, _ = recording_groups(make_slo())
    exprs = records(sli["rules"])
    # A missing bad-event series with a known total is 0 bad events, as in the daemon; the
    # fallback reads the total recorded just before, not the raw total a second time.
    assert exprs["slo:bad_events:rate5m"] == (
        'sum(rate(http_requests_total{job="api",code=~"5.."}[5m]))\n'
        'or on() 0 * slo:total_events:rate5m{slo="api/availability"}'
    )
    assert exprs["slo:total_events:rate3d"] == 'sum(rate(http_requests_total{job="api"}[3d]))'
    assert exprs["slo:error_ratio:rate1h"] == (
        'slo:bad_events:rate1h{slo="api/availability"} / slo:total_events:rate1h{slo="api/availability"}'
    )
    assert exprs["slo:burn_rate:6h"] == 'slo:error_ratio:rate6h{slo="api/availability"} / 0.001'
    # Exactly the policy's windows, and not the period (that one is rolled up).
    windows = {"5m", "30m", "1h", "2h", "6h", "1d", "3d"}
    assert {k.removeprefix("slo:bad_events:rate") for k in exprs if "bad_events" in k} == windows


LATENCY_SLI = {
    "latency": {
        "histogram": "http_request_duration_seconds",
        "selector": 'job="api"',
        "threshold": "300ms",
    }
}
GOOD_SLI = {
    "events": {
        "good": 'sum(rate(http_requests_total{job="api",code!~"5.."}[{{window}}]))',
        "total": 'sum(rate(http_requests_total{job="api"}[{{window}}]))',
    }
}


@pytest.mark.parametrize("sli", [LATENCY_SLI, GOOD_SLI], ids=["latency", "good"])
def test_derived_bad_has_no_zero_fallback_and_gates_the_total(sli: dict[str, Any]) -> None:
    # bad = total − good: an empty bad side means the good series is missing, which must
    # leave no ratio (SLONoData), not a perfect 0; the total is recorded only with it.
    slo = make_slo(sli=sli)
    window_group, period = recording_groups(slo)
    exprs = {**records(window_group["rules"]), **records(period["rules"])}
    total = {
        "latency": 'sum(rate(http_request_duration_seconds_count{job="api"}[5m]))',
        "good": 'sum(rate(http_requests_total{job="api"}[5m]))',
    }["latency" if "latency" in sli else "good"]
    good = {
        "latency": 'sum(rate(http_request_duration_seconds_bucket{job="api",le="0.3"}[5m]))',
        "good": 'sum(rate(http_requests_total{job="api",code!~"5.."}[5m]))',
    }["latency" if "latency" in sli else "good"]
    sel = '{slo="api/availability"}'
    for suffix in ("5m", "5m_every5m"):
        bad_metric, total_metric, good_metric = (
            f"slo:{kind}_events:rate{suffix}" for kind in ("bad", "total", "good")
        )
        # Each raw series read once: good recorded, the total gated on it, bad = difference.
        assert exprs[good_metric] == good
        assert exprs[total_metric] == f"{total}\nand on() {good_metric}{sel}"
        assert exprs[bad_metric] == f"{total_metric}{sel} - {good_metric}{sel}"
    assert not any("or 0 *" in expr or "or on() 0 *" in expr for expr in exprs.values())
    # Rules of a group run in order: each reads what was recorded just before.
    for group in (window_group, period):
        names = [r["record"] for r in group["rules"]]
        for name in names:
            if name.startswith("slo:total_events:") and "30d" not in name:
                good_name = name.replace("total", "good")
                assert names.index(good_name) < names.index(name)
                assert names.index(name) < names.index(name.replace("total", "bad"))


def test_no_data_alert_names_the_likely_cause_of_a_missing_good_series() -> None:
    def description(sli: dict[str, Any]) -> str:
        (rule,) = [r for r in alert_rules(make_slo(sli=sli)) if r["alert"] == NO_DATA_ALERT]
        return rule["annotations"]["description"]

    latency = description(LATENCY_SLI)
    assert 'no bucket le="0.3" — the threshold (300ms) must equal one of its bucket' in latency
    assert 'count by (le) (http_request_duration_seconds_bucket{job="api"})' in latency
    assert "wrong good selector, or every request failing" in description(GOOD_SLI)
    assert description(EVENTS_SLI).startswith("No total events were recorded")


def test_period_is_event_weighted_from_recorded_rates() -> None:
    _, period = recording_groups(make_slo())
    exprs = records(period["rules"])
    assert period["interval"] == "5m"
    # Each run records one 5m tile (a 5m rate every 5m: no overlap, no gap), from the SLI's
    # own PromQL, with the same missing-bad-is-0 rule as the window groups...
    assert exprs["slo:bad_events:rate5m_every5m"] == (
        'sum(rate(http_requests_total{job="api",code=~"5.."}[5m]))\n'
        'or on() 0 * slo:total_events:rate5m_every5m{slo="api/availability"}'
    )
    assert exprs["slo:total_events:rate5m_every5m"] == (
        'sum(rate(http_requests_total{job="api"}[5m]))'
    )
    # ...and the period's rates are the mean of the tiles, recorded before they are read.
    assert exprs["slo:bad_events:rate30d"] == (
        'avg_over_time(slo:bad_events:rate5m_every5m{slo="api/availability"}[30d])'
    )
    assert exprs["slo:total_events:rate30d"] == (
        'avg_over_time(slo:total_events:rate5m_every5m{slo="api/availability"}[30d])'
    )
    names = [r["record"] for r in period["rules"]]
    assert names.index("slo:bad_events:rate5m_every5m") < names.index("slo:bad_events:rate30d")
    # The ratio divides the two rolled-up rates; no ratio is ever averaged.
    assert exprs["slo:error_ratio:rate30d"] == (
        'slo:bad_events:rate30d{slo="api/availability"} / slo:total_events:rate30d{slo="api/availability"}'
    )
    assert exprs["slo:error_budget_remaining:ratio"] == (
        '1 - slo:error_ratio:rate30d{slo="api/availability"} / 0.001'
    )
    assert exprs["slo:objective:ratio"] == "vector(0.999)"
    assert exprs["slo:error_budget:ratio"] == "vector(0.001)"
    assert exprs["slo:period:seconds"] == "vector(2592000)"


def test_every_series_carries_service_slo_tier_and_spec_labels() -> None:
    slo = make_slo(alerting={"labels": {"team": "payments", "slo": "spoof"}})
    assert slo_labels(slo) == {
        "service": "api",
        "slo": "api/availability",
        "tier": "critical",
        "team": "payments",
    }
    for group in recording_groups(slo):
        for rule in group["rules"]:
            assert rule["labels"] == slo_labels(slo)


def test_default_policy_thresholds_are_exact_decimals() -> None:
    alerts = burn_alerts(make_slo())
    got = [
        (a["labels"]["severity"], a["labels"]["long_window"], a["labels"]["short_window"], a["for"])
        for a in alerts
    ]
    assert got == [
        ("page", "1h", "5m", "1m"),
        ("page", "6h", "30m", "3m"),
        ("ticket", "1d", "2h", "12m"),
        ("ticket", "3d", "6h", "36m"),
    ]
    first = alerts[0]["expr"].splitlines()
    assert first[:3] == [
        'slo:burn_rate:1h{slo="api/availability"}',
        'and slo:error_ratio:rate1h{slo="api/availability"} > 0.0144',
        'and slo:error_ratio:rate5m{slo="api/availability"} > 0.0144',
    ]
    for alert, threshold in zip(alerts, ("0.0144", "0.006", "0.003", "0.001"), strict=True):
        assert f" > {threshold}\n" in alert["expr"]
        assert "0.0143999" not in alert["expr"] and "e-" not in alert["expr"]


def test_28_day_factors_follow_the_policy() -> None:
    slo = make_slo(period="28d")
    thresholds = [str(r.threshold) for r in policy_for(slo).rules]
    assert thresholds == ["0.01344", "0.0056", "0.0028", "0.000933333333"]
    for alert, threshold in zip(burn_alerts(slo), thresholds, strict=True):
        assert f"> {threshold}\n" in alert["expr"]
    assert "13.44×" in burn_alerts(slo)[0]["annotations"]["summary"]
    _, period = recording_groups(slo)
    assert records(period["rules"])["slo:period:seconds"] == "vector(2419200)"
    assert "[28d]" in records(period["rules"])["slo:bad_events:rate28d"]


def test_for_is_a_tenth_of_the_short_window_rounded_up_to_minutes() -> None:
    rules = policy_for(make_slo()).rules
    assert [str(for_duration(r)) for r in rules] == ["1m", "3m", "12m", "36m"]


def test_alert_labels_and_annotations() -> None:
    slo = make_slo(
        alerting={
            "runbook_url": "https://runbooks/api",
            "annotations": {"first_steps": "roll back"},
        }
    )
    page = burn_alerts(slo)[0]
    assert page["labels"] == {
        "service": "api",
        "slo": "api/availability",
        "tier": "critical",
        "team": "web",
        "severity": "page",
        "long_window": "1h",
        "short_window": "5m",
    }
    notes = page["annotations"]
    assert notes["runbook_url"] == "https://runbooks/api"
    assert notes["dashboard_url"] == "http://localhost:3000/d/slo-api?var-slo=api/availability"
    assert notes["first_steps"] == "roll back"
    assert "{{ $value | humanize }}×" in notes["description"]
    assert "slo:error_budget_remaining:ratio" in notes["description"]
    assert "2% of the budget in 1h" in notes["description"]


def test_page_or_ticket_can_be_switched_off_and_rules_overridden() -> None:
    slo = make_slo(alerting={"page": False})
    assert {a["labels"]["severity"] for a in burn_alerts(slo)} == {"ticket"}
    custom = make_slo(
        alerting={
            "burn_rates": [
                {"severity": "page", "long_window": "2h", "short_window": "10m", "factor": 10}
            ]
        }
    )
    (alert,) = burn_alerts(custom)
    assert "slo:error_ratio:rate2h" in alert["expr"] and "> 0.01\n" in alert["expr"]
    assert alert["for"] == "1m"
    sli, period = recording_groups(custom)
    assert set(records(sli["rules"])) >= {"slo:bad_events:rate10m", "slo:total_events:rate2h"}
    # The policy's shortest window is 10m: tiles are 10m rates (overlapping, every 5m).
    assert "slo:bad_events:rate10m_every5m{" in records(period["rules"])["slo:bad_events:rate30d"]
    assert "[10m]" in records(period["rules"])["slo:bad_events:rate10m_every5m"]


def test_no_data_alert_waits_for_the_page_long_window() -> None:
    (no_data,) = [r for r in alert_rules(make_slo()) if r["alert"] == NO_DATA_ALERT]
    # No data = no total: a missing bad series counts as 0 bad, so only the total matters.
    assert no_data["expr"] == 'absent(slo:total_events:rate5m{slo="api/availability"})'
    assert no_data["for"] == "1h"
    # absent() keeps only the `slo` matcher; the rule adds the rest for routing.
    assert no_data["labels"]["service"] == "api" and no_data["labels"]["severity"] == "ticket"


def test_low_traffic_guard_is_in_promql_unless_disabled() -> None:
    page = burn_alerts(make_slo())[0]["expr"]
    # 1h × 0.0144 = 51.84 bad events expected per event/s of traffic; 10 expected → no guard.
    assert 'slo:total_events:rate1h{slo="api/availability"} * 51.84 >= 10' in page
    assert 'round(slo:bad_events:rate1h{slo="api/availability"} * 3600) >= 2' in page
    assert "0.975 * round(" in page and "- 0.7755 / sqrt(" in page
    off = burn_alerts(make_slo(alerting={"low_traffic": {"enabled": False}}))[0]["expr"]
    assert "round(" not in off and off.count("\n") == 2


@pytest.mark.parametrize("confidence", ["0.5", "0.7", "0.9", "0.95", "0.99", "0.999", "0.99999"])
def test_release_bound_never_exceeds_the_exact_poisson_bound(confidence: str) -> None:
    alpha = 1 - float(confidence)
    for k in range(1, 400):
        assert release_bound(k, Decimal(confidence)) <= gammaincinv(k, alpha)


def test_guard_never_pages_where_the_daemons_binomial_test_holds() -> None:
    # The daemon releases when P(X ≥ k | n, p) ≤ 1 − confidence and k ≥ min_bad_events.
    p, alpha, agree, stricter = 0.0144, 0.01, 0, 0
    for n in range(1, 700):  # n × p < 10: the guarded regime
        for k in range(2, min(n, 40) + 1):
            rules_release = n * p <= release_bound(k, Decimal("0.99"))
            daemon_release = binom.sf(k - 1, n, p) <= alpha
            assert not (rules_release and not daemon_release), (n, k)
            agree += rules_release == daemon_release
            stricter += daemon_release and not rules_release
    assert agree > 20 * stricter  # mostly the same verdict; the rest hold a little longer


def test_summed_wraps_only_what_needs_it() -> None:
    assert summed("sum(rate(a[5m]))") == "sum(rate(a[5m]))"
    assert summed('sum(rate(a{c=")"}[5m]))') == 'sum(rate(a{c=")"}[5m]))'
    assert summed("sum(rate(a[5m])) by (x)") == "sum(sum(rate(a[5m])) by (x))"
    assert summed("sum(a) / sum(b)") == "sum(sum(a) / sum(b))"
    assert summed("sum by (x) (a)") == "sum(sum by (x) (a))"


def test_latency_and_availability_slis_reuse_engine_sli() -> None:
    spec = ServiceSpec.model_validate(
        {
            "apiVersion": "slo-engine/v1",
            "service": "db",
            "slos": [
                {
                    "name": "fast",
                    "objective": 99,
                    "sli": {
                        "latency": {
                            "histogram": "h_seconds",
                            "selector": 'job="db"',
                            "threshold": "1s",
                        }
                    },
                },
                {"name": "up", "objective": 99.5, "sli": {"availability": {"metric": "pg_up"}}},
            ],
        }
    )
    fast, up = spec.slo_records()
    fast_rules = records(recording_groups(fast)[0]["rules"])
    assert fast_rules["slo:good_events:rate5m"] == (
        'sum(rate(h_seconds_bucket{job="db",le=~"1|1.0"}[5m]))'
    )
    assert fast_rules["slo:total_events:rate5m"] == (
        'sum(rate(h_seconds_count{job="db"}[5m]))\nand on() slo:good_events:rate5m{slo="db/fast"}'
    )
    up_rules = records(recording_groups(up)[0]["rules"])
    assert up_rules["slo:total_events:rate1h"] == "sum(sum(count_over_time(pg_up[1h])) / 3600)"


def test_service_file_groups_alerts_with_the_rates_they_read() -> None:
    groups = service_rule_groups([make_slo()])
    assert [g["name"] for g in groups] == ["slo:api/availability", "slo:api/availability:period"]
    names = [r.get("record") or r.get("alert") for r in groups[0]["rules"]]
    # Every alert comes after every series it reads, in the same group.
    assert names.index(BURN_ALERT) > names.index("slo:burn_rate:3d")


def test_generation_is_deterministic_and_rejects_collisions() -> None:
    slos = [make_slo(), make_slo("web")]
    assert [f.text for f in generate(slos)] == [f.text for f in generate(list(slos))]
    with pytest.raises(GenerateError, match="more than once"):
        generate([make_slo(), make_slo()])
    with pytest.raises(GenerateError, match="overview"):
        generate([make_slo("overview")])


def test_threshold_formatting_has_no_float_noise() -> None:
    for objective in (99, 99.5, 99.9, 99.95, 99.99, 99.999):
        for alert in burn_alerts(make_slo(objective=objective)):
            threshold = alert["expr"].splitlines()[1].rsplit("> ", 1)[1]
            assert (
                Decimal(threshold)
                == policy_for(make_slo(objective=objective))
                .rules[burn_alerts(make_slo(objective=objective)).index(alert)]
                .threshold
            )
            assert len(threshold) < 16 and not math.isnan(float(threshold))
