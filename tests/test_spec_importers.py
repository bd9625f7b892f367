"""Sloth and OpenSLO files convert into exactly the native models a hand-written spec gives."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from engine.spec.durations import Duration
from engine.spec.importers.pyrra import Selector, parse_selector
from engine.spec.load_result import LoadResult
from engine.spec.loader import load_specs
from engine.spec.models import (
    SLI,
    AlertingSpec,
    AvailabilitySLI,
    EventsSLI,
    LatencySLI,
    LowTrafficSpec,
    SLOSpec,
    Tier,
)

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"


def test_sloth_example_converts_to_native_models() -> None:
    path = EXAMPLES / "sloth-checkout.yml"
    result = load_specs([path, ROOT / "slo_specs"])  # slo_specs: its depends_on targets
    assert result.errors == []
    service = result.services[0]
    assert service.service == "checkout"
    assert service.tier is Tier.important
    assert service.owner == "team-payments"
    assert service.depends_on == ["api", "database"]
    # Sloth labels stay Prometheus labels on every rule, as Sloth would have put them.
    assert service.labels == {
        "tier": "important",
        "owner": "team-payments",
        "depends_on": "api,database",
        "cluster": "eu-west-1",
    }
    availability, authorisation = service.slos
    assert availability == SLOSpec(
        name="requests-availability",
        objective=Decimal("99.5"),
        period=Duration.parse("30d"),
        description="Checkout requests answered without a server error.",
        sli=SLI(
            events=EventsSLI(
                bad='sum(rate(http_requests_total{job="checkout",code=~"(5..|429)"}[{{window}}]))',
                total='sum(rate(http_requests_total{job="checkout"}[{{window}}]))',
            )
        ),
        alerting=AlertingSpec(
            name="CheckoutHighErrorRate",
            labels={"category": "availability"},
            annotations={"summary": "High error rate on checkout requests"},
            runbook_url="https://runbooks.example.com/checkout/availability",
            page_labels={"severity": "critical", "routing_key": "payments-oncall"},
            ticket_labels={"severity": "warning", "slack_channel": "payments-alerts"},
        ),
    )
    ratio = (
        "1 - (\n"
        '  sum(rate(payment_authorisations_total{job="gateway",outcome="approved"}[{{window}}]))\n'
        "  /\n"
        '  sum(rate(payment_authorisations_total{job="gateway"}[{{window}}]))\n'
        ")"
    )
    assert authorisation.sli == SLI(events=EventsSLI(bad=f"({ratio})", total=f"({ratio}) * 0 + 1"))
    assert authorisation.objective == Decimal("99")
    assert authorisation.alerting == AlertingSpec(
        name="PaymentAuthorisationErrors",
        page=False,
        labels={"component": "gateway"},
        ticket_labels={"severity": "warning"},
        low_traffic=LowTrafficSpec(enabled=False),
    )
    # The raw SLI's time weighting is not hidden.
    (warning,) = result.warnings
    assert (warning.line, warning.column) == (40, 7)
    assert warning.text.startswith("raw error-ratio SLI imported as a time-weighted ratio")
    assert [slo.id for slo in result.slos][:2] == [
        "checkout/requests-availability",
        "checkout/payment-authorisation-ratio",
    ]
    assert result.slos[0].labels["category"] == "availability"


def test_sloth_minimal_file_gets_defaults(tmp_path: Path) -> None:
    path = tmp_path / "sloth.yaml"
    path.write_text(
        'version: "prometheus/v1"\n'
        "service: myservice\n"
        "slos:\n"
        "  - name: requests-availability\n"
        "    objective: 99.9\n"
        "    sli:\n"
        "      events:\n"
        '        error_query: sum(rate(http_request_duration_seconds_count{code=~"5.."}[{{ .window }}]))\n'
        "        total_query: sum(rate(http_request_duration_seconds_count[{{.window}}]))\n"
        "    alerting:\n"
        "      name: MyServiceHighErrorRate\n"
        "      ticket_alert:\n"
        "        disable: true\n"
    )
    result = load_specs([path])
    assert result.errors == [] and result.warnings == []
    (service,) = result.services
    assert (service.tier, service.owner, service.depends_on, service.labels) == (
        Tier.standard,
        "",
        [],
        {},
    )
    (slo,) = service.slos
    assert slo.sli.events is not None
    assert slo.sli.events.bad == (
        'sum(rate(http_request_duration_seconds_count{code=~"5.."}[{{window}}]))'
    )
    assert slo.alerting.page is True and slo.alerting.ticket is False
    assert slo.alerting.name == "MyServiceHighErrorRate"


def test_openslo_example_converts_to_native_models() -> None:
    result = load_specs([EXAMPLES / "openslo-search.yaml", ROOT / "slo_specs"])
    assert result.errors == [] and result.warnings == []
    search = [s for s in result.services if s.service == "search"]
    assert len(search) == 1  # both SLO documents land in one service
    (service,) = search
    assert (service.tier, service.owner, service.depends_on) == (
        Tier.important,
        "team-discovery",
        ["api"],
    )
    assert service.labels == {}
    availability, fast = service.slos
    assert availability == SLOSpec(
        name="availability",
        objective=Decimal("99.9"),
        period=Duration.parse("28d"),
        description="99.9% of search requests succeed over 28 days.",
        sli=SLI(
            events=EventsSLI(
                bad='sum(rate(search_requests_total{job="search",code=~"5.."}[{{window}}]))',
                total='sum(rate(search_requests_total{job="search"}[{{window}}]))',
            )
        ),
        alerting=AlertingSpec(runbook_url="https://runbooks.example.com/search/availability"),
    )
    assert fast.objective == Decimal("99")
    assert fast.period == Duration.parse("28d")  # 4w
    assert fast.sli == SLI(
        events=EventsSLI(
            good='sum(rate(search_request_duration_seconds_bucket{job="search",le="0.3"}[{{window}}]))',
            total='sum(rate(search_request_duration_seconds_count{job="search"}[{{window}}]))',
        )
    )
    records = {slo.id: slo for slo in result.slos}
    assert records["search/availability"].error_budget == Decimal("0.001")
    assert records["search/availability"].source == str(EXAMPLES / "openslo-search.yaml")


def test_openslo_objects_in_a_list_and_across_files(tmp_path: Path) -> None:
    (tmp_path / "service.yaml").write_text(
        "- apiVersion: openslo/v1\n"
        "  kind: Service\n"
        "  metadata:\n"
        "    name: ledger\n"
        "    labels:\n"
        "      tier: [critical]\n"
        "      team: team-finance\n"
        "      region: [eu, us]\n"
        "      openslo.com/tag: x\n"
        "  spec:\n"
        "    description: Double-entry ledger\n"
        "- apiVersion: openslo/v1\n"
        "  kind: SLI\n"
        "  metadata:\n"
        "    name: ledger-writes\n"
        "  spec:\n"
        "    ratioMetric:\n"
        "      counter: true\n"
        "      bad:\n"
        "        metricSource:\n"
        "          metricSourceRef: thanos\n"
        "          spec:\n"
        '            query: ledger_write_errors_total{job="ledger"}\n'
        "      total:\n"
        "        metricSource:\n"
        "          metricSourceRef: thanos\n"
        "          spec:\n"
        '            query: sum by (region) (ledger_writes_total{job="ledger"})\n'
        "- apiVersion: openslo/v1\n"
        "  kind: DataSource\n"
        "  metadata:\n"
        "    name: thanos\n"
        "  spec:\n"
        "    type: Prometheus\n"
        "    connectionDetails:\n"
        "      url: http://thanos-query:9090\n"
    )
    (tmp_path / "slo.yaml").write_text(
        "apiVersion: openslo/v1\n"
        "kind: SLO\n"
        "metadata:\n"
        "  name: write-success\n"
        "spec:\n"
        "  service: ledger\n"
        "  indicatorRef: ledger-writes\n"
        "  budgetingMethod: Occurrences\n"
        "  timeWindow:\n"
        "    - duration: 1M\n"
        "      isRolling: true\n"
        "  objectives:\n"
        "    - targetPercent: 99.99\n"
    )
    result = load_specs([tmp_path])
    assert result.errors == []
    (warning,) = result.warnings
    assert warning.file == str(tmp_path / "service.yaml")
    assert (warning.line, warning.column) == (9, 7)
    assert "openslo.com/tag" in warning.text
    (service,) = result.services
    assert service.tier is Tier.critical
    assert service.owner == "team-finance"
    assert service.labels == {"region": "eu,us"}
    (slo,) = service.slos
    assert slo.period == Duration.parse("30d")  # OpenSLO: 1M = 30 days
    assert slo.objective == Decimal("99.99")
    assert slo.sli == SLI(
        events=EventsSLI(
            bad='sum(rate(ledger_write_errors_total{job="ledger"}[{{window}}]))',
            total='sum by (region) (rate(ledger_writes_total{job="ledger"}[{{window}}]))',
        )
    )


def test_openslo_alert_policies_are_ignored_with_a_warning(tmp_path: Path) -> None:
    text = (EXAMPLES / "openslo-search.yaml").read_text()
    text = text.replace(
        "  budgetingMethod: Occurrences\n",
        "  budgetingMethod: Occurrences\n  alertPolicies: [fast-burn]\n",
        1,
    )
    text += (
        "---\napiVersion: openslo/v1\nkind: AlertPolicy\nmetadata:\n  name: fast-burn\n"
        "spec:\n  conditions: []\n"
    )
    (tmp_path / "s.yaml").write_text(text)
    result = load_specs([tmp_path, ROOT / "slo_specs"])
    assert result.errors == []
    assert text.splitlines()[46] == "  alertPolicies: [fast-burn]"
    assert text.splitlines()[86] == "kind: AlertPolicy"
    assert [(w.line, w.column) for w in result.warnings] == [(47, 3), (87, 7)]
    assert result.warnings[0].text.startswith("OpenSLO alertPolicies are ignored")
    assert result.warnings[1].text.startswith("OpenSLO kind AlertPolicy is ignored")
    assert len(result.slos) == 2 + 5


# --- Pyrra ServiceLevelObjective ---------------------------------------------------------


def test_pyrra_example_converts_to_native_models() -> None:
    result = load_specs([EXAMPLES / "pyrra-checkout.yaml"])
    assert result.errors == [] and result.warnings == []
    # One resource, one service spec; the service is the pyrra.dev/service label.
    assert {s.service for s in result.services} == {"checkout"}
    assert {(s.owner, s.tier, tuple(s.labels.items())) for s in result.services} == {
        ("team-payments", Tier.standard, (("team", "team-payments"),))
    }
    errors, latency, native, gauge = (s.slos[0] for s in result.services)
    assert errors == SLOSpec(
        name="http-errors",
        objective=Decimal("99.5"),
        period=Duration.parse("28d"),
        description="Checkout HTTP requests answered without a server error.",
        sli=SLI(
            events=EventsSLI(
                bad='sum(rate(http_requests_total{job="checkout",code=~"5.."}[{{window}}]))',
                total='sum(rate(http_requests_total{job="checkout"}[{{window}}]))',
            )
        ),
    )
    assert latency.sli == SLI(
        latency=LatencySLI(
            histogram="http_request_duration_seconds",
            selector='job="checkout",code=~"2.."',
            threshold=Duration.parse("500ms"),
        )
    )
    assert native.sli == SLI(
        latency=LatencySLI(
            histogram="payment_request_duration_seconds",
            selector='job="checkout"',
            threshold=Duration.parse("300ms"),
            native=True,
        )
    )
    assert native.alerting.name == "CheckoutPaymentsSlow"
    assert gauge.sli == SLI(availability=AvailabilitySLI(metric='up{job="cart-store"}'))
    assert gauge.period == Duration.parse("28d")  # 4w
    assert [slo.id for slo in result.slos] == [
        "checkout/http-errors",
        "checkout/http-latency",
        "checkout/payment-latency",
        "checkout/cart-store-up",
    ]


PYRRA_HEAD = (
    "apiVersion: pyrra.dev/v1alpha1\n"
    "kind: ServiceLevelObjective\n"
    "metadata:\n"
    "  name: requests\n"
    "  namespace: billing\n"
    "spec:\n"
    '  target: "99.9"\n'
    "  window: 2w\n"
)


def _pyrra(tmp_path: Path, text: str) -> LoadResult:
    path = tmp_path / "pyrra.yaml"
    path.write_text(text)
    return load_specs([path])


def test_pyrra_grouping_namespace_alerting_and_a_foreign_total(tmp_path: Path) -> None:
    result = _pyrra(
        tmp_path,
        PYRRA_HEAD + "  indicator:\n"
        "    latency:\n"
        "      success:\n"
        '        metric: http_request_duration_seconds_bucket{job="billing",le="1"}\n'
        "      total:\n"
        '        metric: http_requests_total{job="billing"}\n'
        "      grouping: [route]\n"
        "  alerting:\n"
        "    burnrates: false\n"
        "    absent: false\n"
        "    absentName: BillingAbsent\n"
        "  ruleOutput: configmap\n",
    )
    assert result.errors == []
    assert [(w.line, w.column, w.message) for w in result.warnings] == [
        (18, 5, "alerting.absent is ignored"),
        (19, 5, "alerting.absentName is ignored"),
        (20, 3, "ruleOutput is ignored"),
    ]
    (service,) = result.services
    assert service.service == "billing"  # no pyrra.dev/service label: the namespace
    (slo,) = service.slos
    assert slo.period == Duration.parse("14d")
    assert slo.group_by == ["route"]
    # The total is not the bucket's histogram: good over total, as Pyrra computes it.
    assert slo.sli == SLI(
        events=EventsSLI(
            good='sum by (route) (rate(http_request_duration_seconds_bucket{job="billing",le="1"}[{{window}}]))',
            total='sum by (route) (rate(http_requests_total{job="billing"}[{{window}}]))',
        )
    )
    assert (slo.alerting.page, slo.alerting.ticket) == (False, False)


def test_pyrra_ratio_with_grouping_keeps_the_labels(tmp_path: Path) -> None:
    result = _pyrra(
        tmp_path,
        PYRRA_HEAD + "  indicator:\n"
        "    ratio:\n"
        "      errors:\n"
        '        metric: http_requests_total{job="billing",code=~"5.."}\n'
        "      total:\n"
        '        metric: http_requests_total{job="billing"}\n'
        "      grouping: [route]\n"
        "  alerting:\n"
        "    disabled: true\n",
    )
    assert result.errors == [] and result.warnings == []
    (slo,) = result.services[0].slos
    assert slo.group_by == ["route"]
    assert parse_selector("up") == Selector("up", ())
    assert Selector("up", ()).text == "up"
    quoted = parse_selector("""m{a="x,}y", b !~ 'z'}""")
    assert quoted == Selector("m", (("a", "=", '"x,}y"'), ("b", "!~", "'z'")))
    assert quoted.text == """m{a="x,}y",b!~'z'}"""
    assert [
        parse_selector(t) for t in ("m{a=x}", "sum(m)", '{__name__="m"}', "m{a='x' b='y'}")
    ] == [None] * 4
    assert slo.sli.events == EventsSLI(
        bad='sum by (route) (rate(http_requests_total{job="billing",code=~"5.."}[{{window}}]))',
        total='sum by (route) (rate(http_requests_total{job="billing"}[{{window}}]))',
    )
    assert (slo.alerting.page, slo.alerting.ticket) == (False, False)


PYRRA_RATIO = (
    "  indicator:\n"
    "    ratio:\n"
    "      errors:\n"
    '        metric: http_requests_total{code=~"5.."}\n'
    "      total:\n"
    "        metric: http_requests_total\n"
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(
            PYRRA_HEAD + PYRRA_RATIO + "  performanceOverAccuracy: true\n",
            [(15, 3, "performanceOverAccuracy is not supported — remove it")],
            id="performance-over-accuracy",
        ),
        pytest.param(
            PYRRA_HEAD + "  indicator:\n    ratios: {}\n",
            [(10, 5, "unknown key 'ratios' in 'indicator' — did you mean 'ratio'?")],
            id="unknown-indicator",
        ),
        pytest.param(
            PYRRA_HEAD + PYRRA_RATIO + "    bool_gauge:\n      metric: up\n",
            [(9, 3, "an indicator has exactly one of ratio, latency, latencyNative, bool_gauge")],
            id="two-indicators",
        ),
        pytest.param(
            PYRRA_HEAD
            + "  indicator:\n    latency:\n      success:\n"
            + '        metric: h_bucket{job="a"}\n'
            + '      total:\n        metric: h_count{job="a"}\n',
            [(12, 17, 'the success metric must be a histogram bucket with one le="<seconds>"')],
            id="latency-without-le",
        ),
        pytest.param(
            PYRRA_HEAD.replace("  namespace: billing\n", "") + PYRRA_RATIO,
            [(3, 1, "no service: a Pyrra SLO names its service with the label pyrra.dev/service")],
            id="no-service",
        ),
        pytest.param(
            PYRRA_HEAD + PYRRA_RATIO.replace('http_requests_total{code=~"5.."}', "sum(errors)"),
            [(12, 17, "'sum(errors)' is not a metric selector — write a metric selector")],
            id="not-a-selector",
        ),
        pytest.param(
            PYRRA_HEAD.replace("kind: ServiceLevelObjective", "kind: Other") + PYRRA_RATIO,
            [(2, 7, "unsupported Pyrra kind 'Other' — write kind: ServiceLevelObjective")],
            id="other-kind",
        ),
        pytest.param(
            PYRRA_HEAD.replace("v1alpha1", "v1beta1") + PYRRA_RATIO,
            [(1, 13, "unsupported apiVersion 'pyrra.dev/v1beta1' — only pyrra.dev/v1alpha1")],
            id="other-version",
        ),
        pytest.param(
            PYRRA_HEAD.replace('"99.9"', '"99.9%x"') + PYRRA_RATIO,
            [(7, 11, "target: '99.9%x' is not a number")],
            id="model-error-at-target",
        ),
        pytest.param(
            PYRRA_HEAD
            + "  indicator:\n    latencyNative:\n      latency: fast\n"
            + '      total:\n        metric: h{job="a"}\n',
            [(11, 16, "'fast' is not a duration")],
            id="native-latency-not-a-duration",
        ),
    ],
)
def test_pyrra_unsupported_parts_are_errors_at_their_line(
    tmp_path: Path, text: str, expected: list[tuple[int, int, str]]
) -> None:
    errors = _pyrra(tmp_path, text).errors
    assert [(e.line, e.column) for e in errors] == [(line, col) for line, col, _ in expected]
    for error, (_, _, start) in zip(errors, expected, strict=True):
        assert start in error.text, error.text


def test_pyrra_labels_become_rule_labels_tier_and_owner(tmp_path: Path) -> None:
    text = PYRRA_HEAD.replace(
        "  namespace: billing\n",
        "  namespace: billing\n"
        "  labels:\n"
        "    prometheus: k8s\n"
        "    pyrra.dev/service: invoices\n"
        "    pyrra.dev/tier: critical\n"
        "    pyrra.dev/team: team-finance\n"
        "    pyrra.dev/owner: alice\n"
        "    pyrra.dev/severity: critical\n",
    )
    text += PYRRA_RATIO + "  alerting:\n    severities:\n      fastBurn: critical\n"
    result = _pyrra(tmp_path, text)
    assert result.errors == []
    assert [(w.line, w.column, w.message) for w in result.warnings] == [
        (
            12,
            5,
            "label 'pyrra.dev/severity' is not copied: slo-engine sets 'severity' on its alerts",
        ),
        (23, 5, "alerting.severities is ignored"),
    ]
    (service,) = result.services
    assert (service.service, service.tier, service.owner) == ("invoices", Tier.critical, "alice")
    assert service.labels == {"team": "team-finance", "owner": "alice"}
