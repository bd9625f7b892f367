"""Valid specs of every kind load into the expected models, with positions kept."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest
import yaml

from engine.spec import yaml_lines
from engine.spec.durations import Duration
from engine.spec.loader import load_specs
from engine.spec.models import Tier
from engine.spec.yaml_lines import Mark, locate, parse_yaml


@pytest.fixture(autouse=True, params=["libyaml", "python"])
def yaml_parser(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Every test here runs over libyaml's parser and the pure-Python one: the positions
    and errors must not depend on which PyYAML was built with."""
    if request.param == "libyaml" and not yaml.__with_libyaml__:
        pytest.skip("PyYAML was built without libyaml")
    monkeypatch.setattr(yaml_lines, "LIBYAML", request.param == "libyaml")
    return str(request.param)


ROOT = Path(__file__).resolve().parent.parent

EVERY_KIND = """\
apiVersion: slo-engine/v1
service: shop
tier: important
owner: team-shop
depends_on: [payments]
labels:
  team: shop
slos:
  - name: availability
    objective: 99.95
    period: 28d
    description: Requests without server errors.
    sli:
      events:
        bad: sum(rate(http_requests_total{job="shop",code=~"5.."}[{{window}}]))
        total: sum(rate(http_requests_total{job="shop"}[{{window}}]))
  - name: good-events
    objective: 99
    sli:
      events:
        good: sum(rate(jobs_total{result="ok"}[{{window}}]))
        total: |
          sum(rate(jobs_total[{{window}}]))
  - name: latency
    objective: 95
    sli:
      latency:
        histogram: http_request_duration_seconds
        selector: '{job="shop"}'
        threshold: 1s
  - name: probe
    objective: 99.5
    sli:
      availability:
        metric: probe_success{job="blackbox"}
    alerting:
      page: false
      labels: {channel: shop_alerts}
      annotations: {summary: The shop probe fails}
      runbook_url: https://runbooks.example.com/shop/probe
      burn_rates:
        - {severity: ticket, long_window: 1d, short_window: 2h, budget_share: 0.1}
        - {severity: ticket, long_window: 3d, short_window: 6h, factor: 1}
      low_traffic: {enabled: true, confidence: 0.95, min_bad_events: 3}
---
apiVersion: slo-engine/v1
service: payments
slos:
  - name: availability
    objective: 99.9
    sli:
      availability:
        metric: up{job="payments"}
"""


def test_every_sli_kind_round_trips(tmp_path: Path) -> None:
    path = tmp_path / "shop.yaml"
    path.write_text(EVERY_KIND)
    result = load_specs([path])
    assert result.errors == [] and result.warnings == []
    shop, payments = result.services
    assert payments.service == "payments" and payments.tier is Tier.standard
    assert (shop.service, shop.tier, shop.owner, shop.depends_on) == (
        "shop",
        Tier.important,
        "team-shop",
        ["payments"],
    )
    availability, good, latency, probe = shop.slos
    assert availability.objective == Decimal("99.95")
    assert availability.period == Duration.parse("28d")
    assert availability.sli.kind == "events"
    assert availability.sli.events is not None
    assert availability.sli.events.bad == (
        'sum(rate(http_requests_total{job="shop",code=~"5.."}[{{window}}]))'
    )
    assert good.sli.events is not None and good.sli.events.bad is None
    assert good.sli.events.good == 'sum(rate(jobs_total{result="ok"}[{{window}}]))'
    assert good.sli.events.total == "sum(rate(jobs_total[{{window}}]))\n"
    assert good.period == Duration.parse("30d")  # the default
    assert latency.sli.latency is not None
    assert latency.sli.latency.selector == 'job="shop"'  # braces stripped
    assert latency.sli.latency.threshold == Duration.parse("1s")
    assert probe.sli.availability is not None
    assert probe.sli.availability.metric == 'probe_success{job="blackbox"}'
    assert probe.alerting.page is False and probe.alerting.ticket is True
    assert probe.alerting.labels == {"channel": "shop_alerts"}
    assert probe.alerting.runbook_url == "https://runbooks.example.com/shop/probe"
    assert probe.alerting.burn_rates is not None
    assert [r.budget_share for r in probe.alerting.burn_rates] == [Decimal("0.1"), None]
    assert probe.alerting.low_traffic.confidence == Decimal("0.95")
    assert probe.alerting.low_traffic.min_bad_events == 3

    ids = [slo.id for slo in result.slos]
    assert ids == [
        "shop/availability",
        "shop/good-events",
        "shop/latency",
        "shop/probe",
        "payments/availability",
    ]
    record = result.slos[0]
    assert record.objective == Decimal("0.9995")
    assert record.error_budget == Decimal("0.0005")
    assert record.source == str(path)
    assert result.slos[3].labels == {"team": "shop", "channel": "shop_alerts"}


def test_bundled_slo_specs_are_the_runbook_objectives() -> None:
    result = load_specs([ROOT / "slo_specs"])
    assert result.errors == [] and result.warnings == []
    by_id = {slo.id: slo for slo in result.slos}
    assert sorted(by_id) == [
        "api/availability",
        "api/latency-p95",
        "database/availability",
        "database/backup-freshness",
        "database/durability",
    ]
    api = by_id["api/availability"]
    assert api.tier is Tier.critical and api.depends_on == ("database",)
    assert api.objective_percent == Decimal("99.9")
    assert api.sli.events is not None
    assert api.sli.events.bad == (
        'sum(rate(http_requests_total{job="api",code=~"5.."}[{{window}}]))'
    )
    assert api.sli.events.total == 'sum(rate(http_requests_total{job="api"}[{{window}}]))'
    latency = by_id["api/latency-p95"].sli.latency
    assert latency is not None
    assert (latency.histogram, latency.selector, latency.threshold) == (
        "http_request_duration_seconds",
        'job="api"',
        Duration.parse("500ms"),
    )
    assert by_id["api/latency-p95"].objective_percent == Decimal("95")
    db = by_id["database/availability"]
    assert db.objective_percent == Decimal("99.95") and db.tier is Tier.critical
    assert db.sli.availability is not None
    assert db.sli.availability.metric == 'pg_up{job="database"}'
    durability = by_id["database/durability"]
    assert durability.objective_percent == Decimal("99.999")
    assert durability.error_budget == Decimal("0.00001")
    assert durability.sli.events is not None
    assert 'result="failed"' in (durability.sli.events.bad or "")
    freshness = by_id["database/backup-freshness"].sli.availability
    assert freshness is not None
    assert freshness.metric == (
        'time() - backup_last_success_timestamp_seconds{job="backup"} <= bool 900'
    )
    for slo in result.slos:
        assert slo.alerting.runbook_url and slo.alerting.runbook_url.startswith("https://")
        assert slo.description


def test_directories_are_searched_recursively_for_yml_and_yaml(tmp_path: Path) -> None:
    text = EVERY_KIND.split("---\n")[1]
    (tmp_path / "team" / "deep").mkdir(parents=True)
    (tmp_path / "team" / "deep" / "payments.yml").write_text(text)
    (tmp_path / "notes.txt").write_text("not yaml, not read")
    (tmp_path / ".hidden").mkdir()
    (tmp_path / ".hidden" / "broken.yaml").write_text("{{{")
    result = load_specs([tmp_path])
    assert result.errors == []
    assert [slo.id for slo in result.slos] == ["payments/availability"]
    assert result.files == [tmp_path / "team" / "deep" / "payments.yml"]


def test_missing_path_and_empty_directory_are_errors(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    result = load_specs([tmp_path / "nope.yaml", tmp_path / "empty"])
    assert [e.text for e in result.errors] == [
        "no *.yml or *.yaml files in this directory — point validate at the directory that holds the SLO specs",
        "no such file or directory",
    ]


def test_yaml_marks_for_keys_values_and_list_items() -> None:
    parsed = parse_yaml("a: 1\nlist:\n  - x: 'q'\n    y: [1, 2]\n")
    data = parsed.documents[0].data
    start = Mark(1, 1)
    assert locate(data, ("a",), default=start) == Mark(1, 4)
    assert locate(data, ("a",), at_key=True, default=start) == Mark(1, 1)
    assert locate(data, ("list", 0), default=start) == Mark(3, 5)
    assert locate(data, ("list", 0, "x"), default=start) == Mark(3, 8)
    assert locate(data, ("list", 0, "y", 1), default=start) == Mark(4, 12)
    # A key that was never written points at the key that opened its mapping.
    assert locate(data, ("list", 0, "missing"), default=start) == Mark(3, 5)


def test_empty_documents_between_separators_are_skipped(tmp_path: Path) -> None:
    path = tmp_path / "multi.yaml"
    path.write_text("---\n" + EVERY_KIND + "---\n")
    result = load_specs([path])
    assert result.errors == []
    assert len(result.slos) == 5
