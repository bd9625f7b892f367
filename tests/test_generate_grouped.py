"""Generated output for grouped SLOs: rules that keep the group labels through every
operator, alerts per group, per-group no data, dashboards with a variable per group label,
and an Alertmanager config that pairs pages and tickets group by group — while ungrouped
SLOs generate exactly what they did."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml
from harness.localam import ALERTMANAGER, SKIP_REASON, local_alertmanager

from engine.generate.alertmanager import alertmanager_config
from engine.generate.pipeline import generate, rule_file_text
from engine.spec.loader import load_specs
from engine.spec.models import SLO, ServiceSpec
from engine.spec.promql_groups import parse

ROOT = Path(__file__).resolve().parents[1]
PROMTOOL_DIR = ROOT / "tests" / "promtool"
SCHEMAS = ROOT.parent / "shared" / "schemas"
needs_promtool = pytest.mark.skipif(shutil.which("promtool") is None, reason="needs promtool")

SLIS: dict[str, dict[str, Any]] = {
    "events": {
        "events": {
            "bad": 'sum by (route) (rate(http_requests_total{job="shop",code=~"5.."}[{{window}}]))',
            "total": 'sum(rate(http_requests_total{job="shop"}[{{window}}]))',
        }
    },
    "good": {
        "events": {
            "good": 'sum(rate(http_requests_total{job="shop",code!~"5.."}[{{window}}]))',
            "total": 'sum(rate(http_requests_total{job="shop"}[{{window}}]))',
        }
    },
    "latency": {
        "latency": {
            "histogram": "http_request_duration_seconds",
            "selector": 'job="shop"',
            "threshold": "300ms",
        }
    },
    "availability": {"availability": {"metric": 'up{job="shop"}'}},
}


def shop(group_by: list[str] | None = None, service: str = "shop") -> list[SLO]:
    spec: dict[str, Any] = {
        "apiVersion": "slo-engine/v1",
        "service": service,
        "tier": "critical",
        "slos": [{"name": name, "objective": 99.5, "sli": sli} for name, sli in SLIS.items()],
    }
    if group_by is not None:
        spec["group_by"] = group_by
    return ServiceSpec.model_validate(spec).slo_records()


def rule_groups(slos: list[SLO]) -> list[dict[str, Any]]:
    return yaml.safe_load(rule_file_text(slos[0].service, slos))["groups"]


def test_ungrouped_output_is_unchanged_next_to_grouped_slos() -> None:
    plain = shop(service="plain")
    alone = {f.path: f.text for f in generate(plain)}
    mixed = {f.path: f.text for f in generate([*plain, *shop(["route"])])}
    assert mixed["plain.rules.yml"] == alone["plain.rules.yml"]
    # The committed outputs (ungrouped specs) are byte-identical: generate --check.
    result = subprocess.run(
        [sys.executable, "-m", "engine", "generate", "--check"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("labels", [["route"], ["route", "region"]])
def test_every_aggregation_and_match_keeps_the_group_labels(labels: list[str]) -> None:
    """Every recorded rate is a `sum by` the group labels; every `on (...)` matches on
    them; no `ignoring`/`without` drops them; the rest are label-preserving operators
    between recorded series of one SLO (same labels, so matched group by group)."""
    for group in rule_groups(shop(labels)):
        for rule in group["rules"]:
            parsed = parse(rule["expr"])
            for agg in parsed.aggregations:
                if agg.scalar or agg.nested:
                    continue
                assert agg.clause is not None and agg.clause.kind == "by", rule["expr"]
                assert set(labels) <= set(agg.clause.labels.labels), rule["expr"]
            for matching in parsed.matchings:
                assert matching.clause.kind == "on", rule["expr"]
                assert set(labels) <= set(matching.clause.labels.labels), rule["expr"]
            assert "without" not in rule["expr"] and "ignoring" not in rule["expr"]


def test_alerts_name_their_group() -> None:
    for group in rule_groups(shop(["route"])):
        for rule in group["rules"]:
            if "alert" not in rule:
                continue
            annotations = rule["annotations"]
            assert "{{ $labels.route }}" in annotations["summary"], rule["alert"]
            assert annotations["dashboard_url"].endswith(
                "&var-route={{ $labels.route | urlquery }}"
            )
            assert rule["labels"]["slo"] == f"shop/{group['name'].split('/')[1].split(':')[0]}"
            assert "route" not in rule["labels"]  # it comes from the series, per group
            if rule["alert"] == "SLOErrorBudgetBurn":
                assert "route=%q}` $labels.slo $labels.route" in annotations["description"]
            else:
                assert "unless on(route)" in rule["expr"] and "or absent(" in rule["expr"]


def test_latency_total_waits_for_its_own_groups_good_rate() -> None:
    (latency, _) = (g for g in rule_groups(shop(["route"])) if "latency" in g["name"])
    total = next(r for r in latency["rules"] if r.get("record") == "slo:total_events:rate5m")
    assert total["expr"].endswith('and on(route) slo:good_events:rate5m{slo="shop/latency"}')


@needs_promtool
@pytest.mark.prometheus
def test_grouped_rules_pass_promtool_check(tmp_path: Path) -> None:
    for labels in (["route"], ["route", "region"]):
        path = tmp_path / f"shop-{len(labels)}.rules.yml"
        path.write_text(rule_file_text("shop", shop(labels)))
        result = subprocess.run(
            ["promtool", "check", "rules", str(path)], capture_output=True, text=True, check=False
        )
        assert result.returncode == 0, result.stdout + result.stderr


@needs_promtool
@pytest.mark.prometheus
def test_grouped_unit_test_fails_when_groups_are_collapsed(tmp_path: Path) -> None:
    # The per-route unit tests must notice rules that sum every route into one series, as
    # the generator did before grouped SLOs: the test asserts real per-group behaviour.
    rules = (PROMTOOL_DIR / "orders.rules.yml").read_text()
    assert rules.count("sum by (route) (") > 10
    collapsed = rules.replace("sum by (route) (", "sum(").replace("on(route)", "on()")
    (tmp_path / "orders.rules.yml").write_text(collapsed)
    test = (PROMTOOL_DIR / "grouped.test.yml").read_text()
    head, _ = test.split("  # --- the low-traffic guard", 1)
    (tmp_path / "grouped.test.yml").write_text(head)
    result = subprocess.run(
        ["promtool", "test", "rules", str(tmp_path / "grouped.test.yml")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode != 0
    assert "time: 6h2m" in result.stdout + result.stderr


# --- Alertmanager -----------------------------------------------------------------------


def test_pages_inhibit_tickets_of_the_same_group_only() -> None:
    config = alertmanager_config([*shop(service="plain"), *shop(["route", "region"])])
    assert config["route"]["group_by"] == ["service", "slo"]
    assert config["inhibit_rules"][0]["equal"] == ["slo", "region", "route"]
    assert alertmanager_config(shop(service="plain"))["inhibit_rules"][0]["equal"] == ["slo"]


@pytest.mark.alertmanager
@pytest.mark.skipif(shutil.which("amtool") is None, reason="needs amtool")
def test_amtool_accepts_the_grouped_config(tmp_path: Path) -> None:
    generated = next(f for f in generate(shop(["route"])) if f.path == "alertmanager.yml")
    (tmp_path / "alertmanager.yml").write_text(generated.text)
    result = subprocess.run(
        ["amtool", "check-config", str(tmp_path / "alertmanager.yml")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.fixture
def alertmanager(tmp_path: Path) -> Iterator[str]:
    if ALERTMANAGER is None:
        pytest.skip(SKIP_REASON)
    config = next(f for f in generate(shop(["route"])) if f.path == "alertmanager.yml")
    with local_alertmanager(config.text, tmp_path) as url:
        yield url


def _alert(route: str, severity: str) -> dict[str, Any]:
    window = "1h" if severity == "page" else "1d"
    labels = {"alertname": "SLOErrorBudgetBurn", "service": "shop", "slo": "shop/events"}
    return {"labels": {**labels, "route": route, "severity": severity, "long_window": window}}


@pytest.mark.alertmanager
def test_real_alertmanager_one_notification_for_several_groups(alertmanager: str) -> None:
    alerts = [_alert("/cart", "page"), _alert("/pay", "page"), _alert("/cart", "ticket")]
    alerts.append(_alert("/search", "ticket"))
    requests.post(f"{alertmanager}/api/v2/alerts", json=alerts, timeout=5).raise_for_status()
    got = requests.get(f"{alertmanager}/api/v2/alerts", timeout=5).json()
    inhibited = {
        (a["labels"]["route"], a["labels"]["severity"]): bool(a["status"]["inhibitedBy"])
        for a in got
    }
    assert inhibited == {
        ("/cart", "page"): False,
        ("/pay", "page"): False,
        ("/cart", "ticket"): True,  # its own route is paged
        ("/search", "ticket"): False,  # another route's page must not hide it
    }
    groups = requests.get(f"{alertmanager}/api/v2/alerts/groups", timeout=5).json()
    pages = [g for g in groups if g["receiver"]["name"] == "pager"]
    # Both routes' pages are one group: one notification naming both.
    assert len(pages) == 1
    assert sorted(a["labels"]["route"] for a in pages[0]["alerts"]) == ["/cart", "/pay"]


# --- dashboards ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def boards() -> dict[str, dict[str, Any]]:
    slos = [*shop(service="plain"), *shop(["route"])]
    return {
        f.path: json.loads(f.text)
        for f in generate(slos)
        if f.root == "dashboards" and f.path.endswith(".json")
    }


def _panels(board: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in board.get("panels", []):
        yield panel
        yield from panel.get("panels", [])


def test_service_dashboard_has_a_variable_per_group_label(
    boards: dict[str, dict[str, Any]],
) -> None:
    variables = {v["name"]: v for v in boards["slo-shop.json"]["templating"]["list"]}
    route = variables["route"]
    assert route["type"] == "query" and route["multi"] and route["includeAll"]
    assert route["query"] == (
        'label_values(slo:error_budget_remaining:ratio{slo=~"shop/events|shop/good|'
        'shop/latency|shop/availability"}, route)'
    )
    exprs = [t["expr"] for p in _panels(boards["slo-shop.json"]) for t in p.get("targets", [])]
    sli = [e for e in exprs if "slo:" in e and "objective" not in e]
    assert sli and all('route=~"${route:regex}"' in e for e in sli)
    legends = [
        t.get("legendFormat", "")
        for p in _panels(boards["slo-shop.json"])
        if p["type"] == "timeseries"
        for t in p["targets"]
        if "objective" not in t["expr"]
    ]
    assert legends and all("{{route}}" in legend for legend in legends)
    # The ungrouped service's dashboard has no group variable.
    assert [v["name"] for v in boards["slo-plain.json"]["templating"]["list"]] == [
        "datasource",
        "slo",
    ]


def test_overview_lists_the_groups_with_their_budgets(boards: dict[str, dict[str, Any]]) -> None:
    overview = boards["slo-overview.json"]
    (table,) = [p for p in _panels(overview) if p["title"].startswith("Groups of grouped SLOs")]
    assert table["type"] == "table"
    assert table["targets"][0]["expr"] == (
        'sort(slo:error_budget_remaining:ratio{service=~"$service", slo=~"shop/availability|'
        'shop/events|shop/good|shop/latency"}) * 100'
    )


@pytest.mark.skipif(
    not (SCHEMAS / "grafana-dashboard.jsonschema.json").is_file(), reason="no schema"
)
def test_grouped_dashboards_validate_against_grafanas_schema(
    boards: dict[str, dict[str, Any]],
) -> None:
    import jsonschema
    from referencing import Registry, Resource
    from referencing.jsonschema import DRAFT7

    registry = Registry().with_resources(
        (p.name, Resource.from_contents(json.loads(p.read_text()), default_specification=DRAFT7))
        for p in SCHEMAS.glob("*.json")
    )
    schema = json.loads((SCHEMAS / "grafana-dashboard.jsonschema.json").read_text())
    validator = jsonschema.validators.validator_for(schema)(schema, registry=registry)
    for name, board in boards.items():
        errors = [
            f"{list(e.absolute_path)}: {e.message[:200]}" for e in validator.iter_errors(board)
        ]
        assert not errors, f"{name}: {errors[:5]}"


@needs_promtool
@pytest.mark.prometheus
def test_grouped_dashboard_queries_parse(boards: dict[str, dict[str, Any]], tmp_path: Path) -> None:
    substitutions = {
        "${slo:regex}": "shop/events",
        "${route:regex}": "/cart",
        "$__rate_interval": "1m",
        "$service": "shop",
    }
    exprs = set()
    for board in boards.values():
        for panel in _panels(board):
            for target in panel.get("targets", []):
                expr = target["expr"]
                for variable, value in substitutions.items():
                    expr = expr.replace(variable, value)
                assert "$" not in expr, expr
                exprs.add(expr)
    rules = [{"record": f"q:{i}", "expr": e} for i, e in enumerate(sorted(exprs))]
    path = tmp_path / "queries.rules.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "d", "rules": rules}]}))
    result = subprocess.run(
        ["promtool", "check", "rules", str(path)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_promtool_spec_is_a_valid_grouped_spec() -> None:
    loaded = load_specs([PROMTOOL_DIR / "specs" / "orders.yaml"])
    assert loaded.ok, loaded.errors
    (slo,) = loaded.slos
    assert slo.group_by == ("route",) and slo.id == "orders/availability"
