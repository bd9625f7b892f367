"""Grafana dashboards: schema-valid, stable uids, datasource variable, parseable PromQL,
and thresholds that are the policy's."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from engine.alerting.links import UID_MAX, golden_signals_uid, service_dashboard_uid
from engine.evaluation.policy import policy_for
from engine.generate.pipeline import generate
from engine.spec.loader import load_specs
from engine.spec.models import SLO

ROOT = Path(__file__).resolve().parents[1]
SCHEMAS = Path(__file__).resolve().parents[2] / "shared" / "schemas"
DASHBOARD_SCHEMA = SCHEMAS / "grafana-dashboard.jsonschema.json"
UID_RE = re.compile(r"^[a-zA-Z0-9_-]{1,40}$")


@pytest.fixture(scope="module")
def slos() -> list[SLO]:
    loaded = load_specs([ROOT / "slo_specs"])
    assert loaded.ok, loaded.errors
    return loaded.slos


@pytest.fixture(scope="module")
def boards(slos: list[SLO]) -> dict[str, dict[str, Any]]:
    return {
        f.path: json.loads(f.text)
        for f in generate(slos)
        if f.root == "dashboards" and f.path.endswith(".json")
    }


def panels(board: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in board.get("panels", []):
        yield panel
        yield from panel.get("panels", [])


def test_one_overview_and_two_dashboards_per_service(boards: dict[str, dict[str, Any]]) -> None:
    assert sorted(boards) == [
        "golden-signals-api.json",
        "golden-signals-database.json",
        "slo-api.json",
        "slo-database.json",
        "slo-overview.json",
    ]


def test_committed_dashboards_are_current(boards: dict[str, dict[str, Any]]) -> None:
    for name, board in boards.items():
        assert json.loads((ROOT / "dashboards" / name).read_text()) == board, name


@pytest.mark.skipif(not DASHBOARD_SCHEMA.is_file(), reason=f"no dashboard schema at {SCHEMAS}")
def test_every_dashboard_validates_against_grafanas_schema(
    boards: dict[str, dict[str, Any]],
) -> None:
    import jsonschema
    from referencing import Registry, Resource
    from referencing.jsonschema import DRAFT7

    # The schema may $ref its siblings (common, prometheus); register them all by file name.
    registry = Registry().with_resources(
        (
            path.name,
            Resource.from_contents(json.loads(path.read_text()), default_specification=DRAFT7),
        )
        for path in SCHEMAS.glob("*.json")
    )
    schema = json.loads(DASHBOARD_SCHEMA.read_text())
    validator = jsonschema.validators.validator_for(schema)(schema, registry=registry)
    for name, board in boards.items():
        errors = sorted(validator.iter_errors(board), key=lambda e: list(e.absolute_path))
        assert not errors, f"{name}: " + "; ".join(
            f"{list(e.absolute_path)}: {e.message[:200]}" for e in errors[:5]
        )
    # And the validator does reject a broken dashboard.
    broken = dict(boards["slo-overview.json"], panels=[{"title": "no type"}])
    assert list(validator.iter_errors(broken))


def test_uids_are_stable_short_and_unique(boards: dict[str, dict[str, Any]]) -> None:
    uids = [b["uid"] for b in boards.values()]
    assert all(UID_RE.match(u) for u in uids)
    assert len(set(uids)) == len(uids)
    assert boards["slo-api.json"]["uid"] == "slo-api"
    long_name = "a" * 30 + "-" + "b" * 33
    for uid in (service_dashboard_uid(long_name), golden_signals_uid(long_name)):
        assert UID_RE.match(uid) and len(uid) == UID_MAX
    assert service_dashboard_uid(long_name) != service_dashboard_uid(long_name[:-1] + "c")


def test_datasource_is_a_variable_everywhere(boards: dict[str, dict[str, Any]]) -> None:
    for name, board in boards.items():
        text = json.dumps(board)
        assert "${DS_" not in text and "__inputs" not in board, name
        variables = {v["name"]: v for v in board["templating"]["list"]}
        assert variables["datasource"]["type"] == "datasource"
        assert variables["datasource"]["query"] == "prometheus"
        for panel in panels(board):
            if panel["type"] in ("row", "text"):
                continue
            assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, name
            for target in panel["targets"]:
                assert target["datasource"]["uid"] == "${datasource}"


def test_panel_ids_are_unique_and_stable(boards: dict[str, dict[str, Any]]) -> None:
    for board in boards.values():
        ids = [p["id"] for p in panels(board)]
        assert ids == list(range(1, len(ids) + 1))


def test_burn_rate_panels_draw_the_policys_factors(
    boards: dict[str, dict[str, Any]], slos: list[SLO]
) -> None:
    board = boards["slo-api.json"]
    burn = [p for p in panels(board) if p.get("title") == "Burn rate per window"]
    api = [s for s in slos if s.service == "api"]
    assert len(burn) == len(api)
    for panel, slo in zip(burn, api, strict=True):
        steps = panel["fieldConfig"]["defaults"]["thresholds"]["steps"]
        factors = {float(r.factor) for r in policy_for(slo).rules}
        assert {s["value"] for s in steps if s["value"] is not None} == factors
        assert panel["fieldConfig"]["defaults"]["custom"]["thresholdsStyle"]["mode"] == "dashed"
        windows = [t["legendFormat"] for t in panel["targets"]]
        assert windows == ["5m", "30m", "1h", "2h", "6h", "1d", "3d"]


def test_golden_signals_use_the_latency_histogram(boards: dict[str, dict[str, Any]]) -> None:
    exprs = [
        t["expr"] for p in panels(boards["golden-signals-api.json"]) for t in p.get("targets", [])
    ]
    assert (
        'histogram_quantile(0.99, sum by (le) (rate(http_request_duration_seconds_bucket{job="api"}[$__rate_interval])))'
        in exprs
    )
    assert 'sum(rate(process_cpu_seconds_total{job="api"}[$__rate_interval]))' in exprs
    assert any("http_requests_total" in e and "$__rate_interval" in e for e in exprs)


# Values Grafana substitutes before a query reaches Prometheus.
_SUBSTITUTIONS = {
    "${slo:regex}": "api/availability",
    "$__rate_interval": "1m",
    "$__interval": "1m",
    "$__range": "1h",
    "$service": "api",
    "$slo": "api/availability",
}


def _substitute(expr: str) -> str:
    for variable, value in _SUBSTITUTIONS.items():
        expr = expr.replace(variable, value)
    assert "$" not in expr, f"unsubstituted variable in {expr}"
    return expr


@pytest.mark.prometheus
@pytest.mark.skipif(shutil.which("promtool") is None, reason="needs promtool (Debian: prometheus)")
def test_every_panel_query_parses(boards: dict[str, dict[str, Any]], tmp_path: Path) -> None:
    # promtool parses each expression when it checks a rule file: one recording rule per query.
    exprs = sorted(
        {
            _substitute(t["expr"])
            for board in boards.values()
            for panel in panels(board)
            for t in panel.get("targets", [])
        }
    )
    assert len(exprs) > 30
    rules = [{"record": f"dashboard:query:{i}", "expr": e} for i, e in enumerate(exprs)]
    path = tmp_path / "queries.rules.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboards", "rules": rules}]}))
    result = subprocess.run(
        ["promtool", "check", "rules", str(path)], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stdout + result.stderr
    # The check is real: a broken query fails it.
    path.write_text(
        yaml.safe_dump({"groups": [{"name": "d", "rules": [{"record": "x", "expr": "sum(("}]}]})
    )
    broken = subprocess.run(
        ["promtool", "check", "rules", str(path)], capture_output=True, text=True
    )
    assert broken.returncode != 0


def test_provisioning_files(slos: list[SLO]) -> None:
    files = {
        f.path: yaml.safe_load(f.text) for f in generate(slos) if f.path.startswith("provisioning/")
    }
    (datasource,) = files["provisioning/datasources/prometheus.yml"]["datasources"]
    assert datasource["uid"] == "prometheus" and datasource["type"] == "prometheus"
    (provider,) = files["provisioning/dashboards/slo-engine.yml"]["providers"]
    assert provider["type"] == "file" and provider["options"]["path"]
