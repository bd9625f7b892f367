"""Sloth's alerting fields in the generated rules and in the daemon's alerts.

examples/sloth-checkout.yml sets `alerting.name`, page_alert/ticket_alert labels (with
Sloth's usual `severity: critical|warning`) and annotations. The rules must use them, never
let them replace the reserved labels routing relies on, and carry exactly the labels the
daemon's alerts carry for the same SLO. tests/promtool/sloth.test.yml shows the same alerts
as promtool fires them; tests/promtool/sloth-checkout.rules.yml is the golden file.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from engine.alerting.alerts import (
    alerts_from_evaluation,
    fingerprint,
    severity_labels,
)
from engine.evaluation.result import AlertSignal, SLOEvaluation, WindowValue
from engine.generate.alert_rules import BURN_ALERT, NO_DATA_ALERT, alert_rules
from engine.generate.dashboards import dashboards
from engine.generate.pipeline import rule_file_text
from engine.generate.render import to_json
from engine.spec.durations import Duration
from engine.spec.labels import RESERVED_ALERT_LABELS
from engine.spec.loader import load_specs
from engine.spec.models import SLO, ServiceSpec

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "sloth-checkout.yml"
GOLDEN = ROOT / "tests" / "promtool" / "sloth-checkout.rules.yml"
D = Duration.parse


@pytest.fixture(scope="module")
def sloth_slos() -> dict[str, SLO]:
    loaded = load_specs([EXAMPLE])
    assert loaded.ok, loaded.errors
    return {slo.name: slo for slo in loaded.slos}


def _burn(rules: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in rules if r["alert"] != NO_DATA_ALERT]


def test_golden_rule_file(sloth_slos: dict[str, SLO]) -> None:
    text = rule_file_text("checkout", list(sloth_slos.values()))
    assert GOLDEN.read_text(encoding="utf-8") == text, (
        "tests/promtool/sloth-checkout.rules.yml is stale — regenerate it from "
        "examples/sloth-checkout.yml (see tests/test_generate_promtool.py)"
    )


def test_alert_name_and_per_severity_labels(sloth_slos: dict[str, SLO]) -> None:
    rules = alert_rules(sloth_slos["requests-availability"])
    assert {r["alert"] for r in _burn(rules)} == {"CheckoutHighErrorRate"}
    page, _, ticket, _ = _burn(rules)
    common = {
        "service": "checkout",
        "slo": "checkout/requests-availability",
        "tier": "important",
        "category": "availability",
        "cluster": "eu-west-1",
        "depends_on": "api,database",
        "owner": "team-payments",
    }
    assert page["labels"] == {
        **common,
        "routing_key": "payments-oncall",
        "spec_severity": "critical",
        "severity": "page",
        "long_window": "1h",
        "short_window": "5m",
    }
    assert ticket["labels"] == {
        **common,
        "slack_channel": "payments-alerts",
        "spec_severity": "warning",
        "severity": "ticket",
        "long_window": "1d",
        "short_window": "2h",
    }
    # The no-data alert keeps its own name (alerting.name names the burn-rate alerts) and
    # is routed like the SLO's tickets.
    (no_data,) = [r for r in rules if r["alert"] == NO_DATA_ALERT]
    assert no_data["labels"]["slack_channel"] == "payments-alerts"
    assert no_data["labels"]["severity"] == "ticket"
    # Page disabled in Sloth: tickets only, under the SLO's own alert name.
    payment = _burn(alert_rules(sloth_slos["payment-authorisation-ratio"]))
    assert [(r["alert"], r["labels"]["severity"]) for r in payment] == [
        ("PaymentAuthorisationErrors", "ticket"),
        ("PaymentAuthorisationErrors", "ticket"),
    ]
    assert payment[0]["labels"]["spec_severity"] == "warning"


def _slo(**alerting: Any) -> SLO:
    spec = {
        "apiVersion": "slo-engine/v1",
        "service": "api",
        "tier": "critical",
        "labels": {"team": "web"},
        "slos": [
            {
                "name": "availability",
                "objective": 99.9,
                "sli": {
                    "events": {
                        "bad": 'sum(rate(r{code=~"5.."}[{{window}}]))',
                        "total": "sum(rate(r[{{window}}]))",
                    }
                },
                "alerting": alerting,
            }
        ],
    }
    return ServiceSpec.model_validate(spec).slo_records()[0]


def test_per_severity_wins_over_slo_labels_never_over_reserved() -> None:
    slo = _slo(
        labels={"team": "web", "channel": "general"},
        annotations={"summary": "api burns", "playbook": "general"},
        page_labels={
            "channel": "pager",
            "severity": "critical",
            "service": "spoof",
            "slo": "x",
            "tier": "low",
            "long_window": "9h",
            "alertname": "Nope",
        },
        page_annotations={"playbook": "page-playbook"},
    )
    page = _burn(alert_rules(slo))[0]
    labels = page["labels"]
    assert labels["channel"] == "pager"  # per-severity beats the SLO's label
    assert (labels["service"], labels["slo"], labels["tier"]) == (
        "api",
        "api/availability",
        "critical",
    )
    assert (labels["severity"], labels["long_window"]) == ("page", "1h")
    assert labels["spec_severity"] == "critical" and labels["spec_service"] == "spoof"
    assert labels["spec_slo"] == "x" and labels["spec_tier"] == "low"
    assert labels["spec_long_window"] == "9h" and labels["spec_alertname"] == "Nope"
    assert page["alert"] == BURN_ALERT
    assert page["annotations"]["playbook"] == "page-playbook"
    assert page["annotations"]["summary"] == "api burns"
    # The ticket gets neither the page's labels nor its annotations.
    ticket = _burn(alert_rules(slo))[2]
    assert ticket["labels"]["channel"] == "general" and "spec_severity" not in ticket["labels"]
    assert ticket["annotations"]["playbook"] == "general"


def test_a_label_the_spec_names_spec_x_itself_is_not_clobbered() -> None:
    slo = _slo(page_labels={"severity": "critical", "spec_severity": "sev1"})
    assert severity_labels(slo, "page") == {"spec_severity": "sev1"}
    assert {"severity", "service", "slo", "tier", "alertname"} <= RESERVED_ALERT_LABELS


def _evaluation(slo: SLO) -> SLOEvaluation:
    value = WindowValue(bad=50, total=1000, error_ratio=0.05, burn_rate=10.0)
    return SLOEvaluation(
        slo=slo,
        evaluated_at=1_700_000_000.0,
        status="page",
        windows={w: value for w in (D("5m"), D("30m"), D("1h"), D("2h"), D("6h"), D("1d"))},
        error_budget_remaining=0.5,
        alerts=(
            AlertSignal("page", D("1h"), D("5m"), Decimal("14.4")),
            AlertSignal("ticket", D("1d"), D("2h"), Decimal("3")),
        ),
    )


def test_daemon_alerts_carry_the_same_extra_labels_as_the_rules(
    sloth_slos: dict[str, SLO],
) -> None:
    slo = sloth_slos["requests-availability"]
    daemon = {a.severity: a for a in alerts_from_evaluation(_evaluation(slo))}
    rules = {r["labels"]["severity"]: r for r in _burn(alert_rules(slo))}
    for severity in ("page", "ticket"):
        ours, theirs = daemon[severity].labels, rules[severity]["labels"]
        assert ours["alertname"] == rules[severity]["alert"] == "CheckoutHighErrorRate"
        # The same label set, slo="<service>/<name>" included, but for the windows a rule
        # names (the daemon's one page alert stands for both page rules).
        assert ours["slo"] == theirs["slo"] == "checkout/requests-availability"
        rule_only = {"long_window", "short_window"}
        assert ours == {
            "alertname": rules[severity]["alert"],
            **{k: v for k, v in theirs.items() if k not in rule_only},
        }
    assert daemon["page"].labels["routing_key"] == "payments-oncall"
    assert daemon["page"].labels["spec_severity"] == "critical"
    assert daemon["ticket"].labels["slack_channel"] == "payments-alerts"
    assert "routing_key" not in daemon["ticket"].labels


def test_daemon_labels_unchanged_without_the_new_fields() -> None:
    slo = _slo(labels={"team": "web"})
    page = {a.severity: a for a in alerts_from_evaluation(_evaluation(slo))}["page"]
    expected = {
        "team": "web",
        "alertname": "SLOErrorBudgetBurn",
        "service": "api",
        "slo": "api/availability",
        "severity": "page",
        "tier": "critical",
    }
    assert page.labels == expected
    assert page.fingerprint == fingerprint(expected)
    # And the generated page rule carries the same labels (plus the windows it names).
    rule = _burn(alert_rules(slo))[0]
    assert rule["alert"] == expected["alertname"]
    assert {**rule["labels"], "alertname": rule["alert"]} == {
        **expected,
        "long_window": "1h",
        "short_window": "5m",
    }


NATIVE = """\
apiVersion: slo-engine/v1
service: api
slos:
  - name: availability
    objective: 99.9
    sli:
      events:
        bad: sum(rate(r{code=~"5.."}[{{window}}]))
        total: sum(rate(r[{{window}}]))
    alerting:
      page_labels:
        severity: critical
        team: web
"""


def test_loader_warns_where_a_native_spec_sets_a_reserved_label(tmp_path: Path) -> None:
    (tmp_path / "api.yaml").write_text(NATIVE)
    loaded = load_specs([tmp_path / "api.yaml"])
    assert loaded.ok  # a warning, not an error: nothing is lost, the label is renamed
    (warning,) = loaded.warnings
    assert (warning.line, warning.column) == (12, 9)
    assert "'severity' is reserved" in warning.message
    assert "spec_severity='critical'" in warning.message
    assert "Alertmanager routes" in warning.hint


def test_sloth_severity_labels_are_the_documented_mapping_not_a_warning() -> None:
    loaded = load_specs([EXAMPLE])
    assert loaded.ok
    assert not [w for w in loaded.warnings if "is reserved" in w.message]


def test_dashboards_match_custom_alert_names(sloth_slos: dict[str, SLO]) -> None:
    boards = {name: to_json(board) for name, board in dashboards(list(sloth_slos.values()))}
    overview = boards["slo-overview.json"]
    assert 'alertname=~\\"CheckoutHighErrorRate|PaymentAuthorisationErrors|SLONoData\\"' in (
        overview
    )
    assert "SLOErrorBudgetBurn" not in overview
    detail = boards["slo-checkout.json"]
    assert 'alertname=\\"CheckoutHighErrorRate\\"' in detail
    assert 'alertname=\\"PaymentAuthorisationErrors\\"' in detail
