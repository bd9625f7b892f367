"""`slo-engine suggest` end to end: generated traffic with exact ground truth, a real
Prometheus (one per module), the CLI's outputs, exit codes and spec edits.

Fourteen days at a 60 s scrape, judged at 5-minute steps, and SLOs with a 7-day period: two
whole periods, and eleven days of alert replays after the 3-day warm-up. One service per case:

- steady: 0.07 % errors (99.93 %) at 99.9 → keeps 99.9 (70 % of its budget spent), not
  99.95 (140 %);
- strained: 0.4 % errors at 99.9 → unattainable, 99 recommended (99.5 would spend 80 %);
- loose: 0.002 % errors at 99 → trivially loose, 99.99 recommended;
- slow: 1.2 % of requests over 0.5 s at 99.5 % under 500ms → the 2.5s bucket (99.76 %);
- bursty: four unlabelled 10-minute bursts at 4 % errors and one labelled 5-minute outage.
  The default policy of a 7-day period pages on the bursts (1h ratio 0.67 % over its
  3.36× threshold 0.336 %); the 28d factors (13.44×: 1.344 %) page on the outage only.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from engine.cli import _register, app
from engine.demo.scenario import Incident, Scenario, ServiceLoad
from engine.source.localprom import LocalPrometheus
from engine.spec.loader import load_specs

pytestmark = pytest.mark.prometheus

MIN = 60
HOUR = 3600
DAY = 86_400
T0 = 1_704_067_200  # Monday 2024-01-01 00:00 UTC
END = T0 + 14 * DAY
OUTAGE = 10 * DAY + 3 * HOUR  # bursty: 5 minutes of 100 % errors, labelled for 15 minutes
BURSTS = [4 * DAY + 9 * HOUR, 5 * DAY + 14 * HOUR, 6 * DAY + 20 * HOUR, 8 * DAY + 11 * HOUR]


def _scenario() -> Scenario:
    bursts = [Incident(b, b + 10 * MIN, error_ratio=0.04) for b in BURSTS]
    outage = Incident(OUTAGE, OUTAGE + 5 * MIN, error_ratio=1.0)
    return Scenario(
        start=T0,
        duration=14 * DAY + HOUR,
        scrape_interval=60,
        services=[
            ServiceLoad(job="steady", rps=20, error_ratio=0.0007, daily_amplitude=0.3),
            ServiceLoad(job="strained", rps=20, error_ratio=0.004),
            ServiceLoad(job="loose", rps=20, error_ratio=0.00002),
            ServiceLoad(job="slow", rps=20, error_ratio=0.0, slow_ratio=0.012),
            ServiceLoad(job="bursty", rps=20, error_ratio=0.0, incidents=[*bursts, outage]),
        ],
    )


def _events(service: str, objective: str, comment: str = "") -> str:
    return f"""# {service}: owned by the {service} team — keep this comment
apiVersion: slo-engine/v1
service: {service}
slos:
  - name: availability
    objective: {objective}{comment}
    period: 7d
    sli:
      events:
        bad: sum(rate(http_requests_total{{job="{service}",code="500"}}[{{{{window}}}}]))
        total: sum(rate(http_requests_total{{job="{service}"}}[{{{{window}}}}]))
"""


SLOW = """apiVersion: slo-engine/v1
service: slow
slos:
  - name: latency
    objective: 99.5
    period: 7d
    sli:
      latency:
        histogram: http_request_duration_seconds
        selector: job="slow"
        threshold: 500ms
"""

# OpenSLO writes the objective as a fraction; suggest shows the edit but never writes it.
OPENSLO = """apiVersion: openslo/v1
kind: SLO
metadata:
  name: availability
spec:
  service: legacy
  budgetingMethod: Occurrences
  timeWindow:
    - duration: 7d
      isRolling: true
  indicator:
    metadata:
      name: legacy-errors
    spec:
      ratioMetric:
        counter: true
        bad:
          metricSource:
            type: Prometheus
            spec:
              query: http_requests_total{job="strained",code="500"}
        total:
          metricSource:
            type: Prometheus
            spec:
              query: http_requests_total{job="strained"}
  objectives:
    - target: 0.999
"""


def _write_specs(root: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "steady.yaml").write_text(_events("steady", "99.9", "  # what we promise"))
    (root / "strained.yaml").write_text(_events("strained", "99.9"))
    (root / "loose.yaml").write_text(_events("loose", '"99"'))
    (root / "bursty.yaml").write_text(_events("bursty", "99.9"))
    (root / "slow.yaml").write_text(SLOW)
    return root


@pytest.fixture(scope="module")
def prometheus(module_prometheus_for) -> LocalPrometheus:
    return module_prometheus_for(_scenario())


@pytest.fixture(scope="module")
def labels(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("labels") / "labels.yaml"
    path.write_text(
        "incidents:\n"
        f"  - {{service: bursty, start: {T0 + OUTAGE}, end: {T0 + OUTAGE + 15 * MIN}}}\n"
    )
    return path


def _suggest(prometheus: LocalPrometheus, specs: Path, *extra: str) -> Any:
    _register()
    args = ["suggest", "--specs", str(specs), "--prometheus-url", prometheus.url]
    args += ["--days", "14", "--end", str(END), "--scrape-interval", "60s", *extra]
    return CliRunner().invoke(app, args)


@pytest.fixture(scope="module")
def advice(
    prometheus: LocalPrometheus, labels: Path, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Any]:
    specs = _write_specs(tmp_path_factory.mktemp("specs"))
    run = _suggest(prometheus, specs, "--format", "json", "--labels", str(labels))
    assert run.exit_code == 0, run.output
    obj = json.loads(run.stdout)
    return {s["slo_id"]: s for s in obj["slos"]} | {"": obj}


def test_a_service_at_99_93_keeps_99_9_not_99_95(advice: dict[str, Any]) -> None:
    steady = advice["steady/availability"]
    assert [p["usable"] for p in steady["periods"]] == [True, True]
    for period in steady["periods"]:
        assert period["achieved"] == pytest.approx(99.93, abs=0.002)
    assert steady["recommendation"]["objective"] == 99.9
    assert "met in 2 of the last 2 periods" in steady["recommendation"]["reason"]
    rungs = {r["objective"]: r for r in steady["ladder"]}
    assert rungs[99.9]["worst_budget_spent"] == pytest.approx(0.7, abs=0.02)
    assert rungs[99.95]["periods_violated"] == 2
    assert rungs[99.9]["periods_violated"] == 0
    assert steady["warnings"] == []
    # The ladder replays each objective: tighter ones alert more, never less.
    tickets = [rungs[o]["tickets"] for o in (99.0, 99.5, 99.9, 99.95, 99.99)]
    assert tickets == sorted(tickets) and tickets[-1] > 0


def test_an_unattainable_objective_is_flagged(advice: dict[str, Any]) -> None:
    strained = advice["strained/availability"]
    (warning,) = strained["warnings"]
    assert warning["kind"] == "unattainable"
    assert "missed in 2 of 2 periods" in warning["message"]
    assert strained["recommendation"]["objective"] == 99.0
    loose = advice["loose/availability"]
    assert [w["kind"] for w in loose["warnings"]] == ["loose"]
    assert loose["recommendation"]["objective"] == 99.99


def test_a_latency_threshold_is_recommended_from_the_buckets(advice: dict[str, Any]) -> None:
    latency = advice["slow/latency"]["latency"]
    shares = {t["threshold"]: t["share"] for t in latency["thresholds"]}
    # The scenario's buckets: 50ms … 5s (+Inf is not a threshold).
    assert list(shares) == ["50ms", "100ms", "250ms", "500ms", "1s", "2s500ms", "5s"]
    assert shares["500ms"] == pytest.approx(98.8, abs=0.01)
    assert shares["1s"] == pytest.approx(99.4, abs=0.01)
    assert shares["2s500ms"] == pytest.approx(99.76, abs=0.01)
    assert latency["recommended"] == {"threshold": "2s500ms", "objective": 99.5}
    assert [w["kind"] for w in advice["slow/latency"]["warnings"]] == ["unattainable"]


def test_policy_comparison_prefers_catching_the_outage_without_false_pages(
    advice: dict[str, Any],
) -> None:
    policy = advice["bursty/availability"]["policy"]
    rows = {p["policy"]: p for p in policy["policies"]}
    assert set(rows) == {"current", "factors-28d", "page-30m", "low-traffic-0.999"}
    for row in rows.values():  # the workbook's four measures, for every policy
        assert {"precision", "recall", "detection_time", "reset_time"} <= set(row)
    assert rows["current"]["recall"] == 1.0
    assert rows["current"]["false_pages"] == len(BURSTS)
    assert rows["page-30m"]["false_pages"] == len(BURSTS)
    assert rows["factors-28d"] | {"policy": None} == rows["factors-28d"] | {
        "policy": None,
        "recall": 1.0,
        "precision": 1.0,
        "false_pages": 0,
        "pages": 1,
    }
    assert policy["recommended"] == "factors-28d"
    assert "1/1 known incidents with 0 false pages" in policy["reason"]
    fleet = advice[""]["fleet_policy"]
    assert fleet["recommended"] == "factors-28d"
    assert advice[""]["reference"] == "labels"


def test_without_labels_the_engines_own_incidents_are_the_reference(
    prometheus: LocalPrometheus, tmp_path: Path
) -> None:
    specs = tmp_path / "specs"
    specs.mkdir()
    (specs / "bursty.yaml").write_text(_events("bursty", "99.9"))
    run = _suggest(prometheus, specs, "--format", "json")
    assert run.exit_code == 0, run.output
    obj = json.loads(run.stdout)
    assert obj["reference"] == "incidents"
    (slo,) = obj["slos"]
    rows = {p["policy"]: p for p in slo["policy"]["policies"]}
    # Every page of the current policy opened (or joined) an incident.
    assert rows["current"]["precision"] == 1.0 and rows["current"]["recall"] == 1.0
    assert rows["current"]["labeled_incidents"] >= 1
    assert slo["policy"]["recommended"] == "current"


def test_json_contract(advice: dict[str, Any]) -> None:
    obj = advice[""]
    assert set(obj) == {"history", "policies", "reference", "slos", "fleet_policy"}
    assert obj["history"] == {
        "start": END - 14 * DAY,
        "end": END,
        "days": 14,
        "step": "5m",
        "replayed_from": END - 11 * DAY,
    }
    for slo in obj["slos"]:
        assert set(slo) == {
            "slo_id", "service", "group", "source", "objective", "period", "sli", "error", "periods",
            "calendar_months", "distribution", "ladder", "recommendation", "warnings",
            "latency", "policy",
        }  # fmt: skip
        assert [r["objective"] for r in slo["ladder"]] == sorted(
            {99.0, 99.5, 99.9, 99.95, 99.99, slo["objective"]}
        )
        for rung in slo["ladder"]:
            assert set(rung) == {
                "objective", "budget_spent", "worst_budget_spent", "periods",
                "periods_violated", "pages", "tickets",
            }  # fmt: skip
        (month,) = slo["calendar_months"]
        assert month["label"] == "2024-01" and month["partial"] is True
        assert slo["distribution"]["samples"] == 8  # 7d periods ending at each of 8 days
    assert advice["steady/availability"]["calendar_months"][0]["achieved"] == pytest.approx(
        99.93, abs=0.002
    )


def test_no_history_says_so_never_zero_or_hundred(
    prometheus: LocalPrometheus, tmp_path: Path
) -> None:
    specs = tmp_path / "specs"
    specs.mkdir()
    (specs / "ghost.yaml").write_text(_events("ghost", "99.9"))
    run = _suggest(prometheus, specs, "--format", "json")
    assert run.exit_code == 0, run.output
    (slo,) = json.loads(run.stdout)["slos"]
    assert slo["recommendation"] is None
    assert [w["kind"] for w in slo["warnings"]] == ["no_data"]
    assert all(p["achieved"] is None for p in slo["periods"])
    assert all(r["budget_spent"] == [None, None] for r in slo["ladder"])


def test_write_edits_native_specs_keeping_comments_and_they_validate(
    prometheus: LocalPrometheus, labels: Path, tmp_path: Path
) -> None:
    specs = _write_specs(tmp_path / "specs")
    (specs / "legacy.yaml").write_text(OPENSLO)
    before = {p.name: p.read_text() for p in specs.iterdir()}
    run = _suggest(prometheus, specs, "--labels", str(labels), "--write")
    assert run.exit_code == 0, run.output
    after = {p.name: p.read_text() for p in specs.iterdir()}
    assert after["steady.yaml"] == before["steady.yaml"]  # 99.9 stays
    assert after["strained.yaml"] == before["strained.yaml"].replace(
        "objective: 99.9\n", "objective: 99\n"
    )
    assert after["loose.yaml"] == before["loose.yaml"].replace('"99"', '"99.99"')
    assert "# bursty: owned by the bursty team — keep this comment" in after["bursty.yaml"]
    assert after["legacy.yaml"] == OPENSLO, "foreign specs are never written"
    assert "legacy.yaml is not a native slo-engine spec" in run.stderr
    assert "+    - target: 0.99\n" in run.stderr
    loaded = load_specs([specs])
    assert loaded.errors == []
    bursty = next(s for s in loaded.slos if s.service == "bursty")
    factors = [str(r.factor) for r in bursty.alerting.burn_rates or []]
    assert factors == ["13.44", "5.6", "2.8", "0.933333333333"]
    validate = CliRunner().invoke(app, ["validate", str(specs)])
    assert validate.exit_code == 0, validate.output


def test_diff_prints_a_unified_diff_and_writes_nothing(
    prometheus: LocalPrometheus, labels: Path, tmp_path: Path
) -> None:
    specs = _write_specs(tmp_path / "specs")
    before = {p.name: p.read_text() for p in specs.iterdir()}
    run = _suggest(prometheus, specs, "--labels", str(labels), "--diff")
    assert run.exit_code == 0, run.output
    assert {p.name: p.read_text() for p in specs.iterdir()} == before
    out = run.stdout
    # Outside the working directory: the absolute path on both sides (`patch -p0`).
    assert f"--- {specs / 'strained.yaml'}\n+++ {specs / 'strained.yaml'}\n" in out
    assert "-    objective: 99.9\n+    objective: 99\n" in out
    assert "+    alerting:\n" in out
    assert "+        - {severity: page, long_window: 1h, short_window: 5m, factor: 13.44}\n" in out
    assert "steady.yaml" not in out


def test_exit_codes(prometheus: LocalPrometheus, tmp_path: Path) -> None:
    specs = _write_specs(tmp_path / "specs")
    assert _suggest(prometheus, specs, "--format", "xml").exit_code == 2
    assert _suggest(prometheus, specs, "--step", "7m").exit_code == 2  # divides no window
    assert _suggest(prometheus, specs, "--days", "2").exit_code == 2  # ≤ the 3d warm-up
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "x.yaml").write_text("apiVersion: slo-engine/v1\nservice: x\nslos: []\n")
    assert _suggest(prometheus, bad).exit_code == 1
    missing = tmp_path / "labels.yaml"
    missing.write_text("incidents: [{service: x}]\n")
    assert _suggest(prometheus, specs, "--labels", str(missing)).exit_code == 1
    _register()
    down = CliRunner().invoke(
        app,
        ["suggest", "--specs", str(specs), "--prometheus-url", "http://127.0.0.1:9",
         "--days", "14", "--end", str(END), "--timeout", "2s"],
    )  # fmt: skip
    assert down.exit_code == 3
    assert "Prometheus is unavailable" in down.stderr


def test_table_and_markdown(prometheus: LocalPrometheus, labels: Path, tmp_path: Path) -> None:
    specs = _write_specs(tmp_path / "specs")
    table = _suggest(prometheus, specs, "--labels", str(labels))
    assert table.exit_code == 0, table.output
    assert "steady/availability" in table.stdout and "← recommended" in table.stdout
    md = _suggest(prometheus, specs, "--labels", str(labels), "--format", "md")
    assert md.exit_code == 0, md.output
    assert md.stdout.startswith("# Suggestions from 2024-01-01 00:00 → 2024-01-15 00:00 UTC")
    assert "## strained/availability" in md.stdout
    assert "| 99 % ← recommended |" in md.stdout


def test_the_current_objective_alerts_exactly_as_the_backtest_replays_them(
    prometheus: LocalPrometheus, tmp_path: Path
) -> None:
    """The ladder's rung at the current objective is the backtest itself: same alert runs,
    page and ticket, for every SLO (held alerts excluded on both sides)."""
    from engine.advice.advise import advise
    from engine.advice.history import history_plan
    from engine.backtest.plan import fetch_history
    from engine.backtest.replay import replay
    from engine.source.prometheus import PrometheusSource
    from engine.spec.durations import Duration

    slos = load_specs([_write_specs(tmp_path / "specs")]).slos
    plan = history_plan(slos, END, 14, Duration.parse("5m"))
    rates = fetch_history(PrometheusSource(prometheus.url, timeout=60), slos, plan)
    reference = replay(slos, rates, plan)
    advice = advise(slos, rates, plan, days=14, reference=reference)
    for item in advice.slos:
        assert item.ladder is not None
        (rung,) = [r for r in item.ladder.rungs if r.objective == item.slo.objective_percent]
        alerts = [a for a in reference.alerts if a.slo_id == item.slo.id and a.held is None]
        assert rung.pages == sum(1 for a in alerts if a.severity == "page"), item.slo.id
        assert rung.tickets == sum(1 for a in alerts if a.severity == "ticket"), item.slo.id
    assert any(r.pages for a in advice.slos for r in a.ladder.rungs if a.ladder)  # type: ignore[union-attr]


GROUPED = """apiVersion: slo-engine/v1
service: pair
slos:
  - name: availability
    objective: 99.9
    period: 7d
    group_by: [job]
    sli:
      events:
        bad: sum(rate(http_requests_total{job=~"steady|strained",code="500"}[{{window}}]))
        total: sum(rate(http_requests_total{job=~"steady|strained"}[{{window}}]))
"""


def test_a_grouped_slo_is_judged_whole_and_per_group_and_only_the_spec_is_edited(
    prometheus: LocalPrometheus, labels: Path, tmp_path: Path
) -> None:
    specs = tmp_path / "specs"
    specs.mkdir()
    (specs / "pair.yaml").write_text(GROUPED)
    run = _suggest(prometheus, specs, "--format", "json", "--labels", str(labels))
    assert run.exit_code == 0, run.output
    slos = {s["slo_id"]: s for s in json.loads(run.stdout)["slos"]}
    assert list(slos) == [
        "pair/availability",
        'pair/availability{job="steady"}',
        'pair/availability{job="strained"}',
    ]
    whole = slos["pair/availability"]
    assert whole["group"] is None
    # Both groups' events together: (0.07 % + 0.4 %) / 2 errors, 99.765 %.
    assert whole["periods"][0]["achieved"] == pytest.approx(99.765, abs=0.002)
    assert whole["recommendation"]["objective"] == 99.5
    assert slos['pair/availability{job="steady"}']["group"] == {"job": "steady"}
    assert slos['pair/availability{job="steady"}']["recommendation"]["objective"] == 99.9
    assert slos['pair/availability{job="strained"}']["recommendation"]["objective"] == 99.0
    diff = _suggest(prometheus, specs, "--labels", str(labels), "--diff")
    assert diff.exit_code == 0, diff.output
    assert diff.stdout.count("+    objective: 99.5\n") == 1
    assert "+    objective: 99\n" not in diff.stdout  # a group's advice is never written
