"""Every invalid input points at its exact line and column, says what is wrong and how to fix it."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from engine.spec import promql, yaml_lines
from engine.spec.loader import load_specs


@pytest.fixture(autouse=True, params=["libyaml", "python"])
def yaml_parser(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Every test here runs over libyaml's parser and the pure-Python one: the positions
    and errors must not depend on which PyYAML was built with."""
    if request.param == "libyaml" and not yaml.__with_libyaml__:
        pytest.skip("PyYAML was built without libyaml")
    monkeypatch.setattr(yaml_lines, "LIBYAML", request.param == "libyaml")
    return str(request.param)


# Line numbers below refer to this base document.
BASE = """\
apiVersion: slo-engine/v1
service: api
tier: critical
slos:
  - name: availability
    objective: 99.9
    sli:
      events:
        bad: sum(rate(http_requests_total{code=~"5.."}[{{window}}]))
        total: sum(rate(http_requests_total[{{window}}]))
"""
LATENCY = BASE.replace(
    """      events:
        bad: sum(rate(http_requests_total{code=~"5.."}[{{window}}]))
        total: sum(rate(http_requests_total[{{window}}]))""",
    """      latency:
        histogram: http_request_duration_seconds
        selector: job="api"
        threshold: 500ms""",
)
SLOTH = """\
version: "prometheus/v1"
service: "checkout"
slos:
  - name: "requests-availability"
    objective: 99.5
    sli:
      events:
        error_query: sum(rate(http_requests_total{code=~"5.."}[{{.window}}]))
        total_query: sum(rate(http_requests_total[{{.window}}]))
    alerting:
      name: CheckoutHighErrorRate
"""
OPENSLO = """\
apiVersion: openslo/v1
kind: SLO
metadata:
  name: availability
spec:
  service: search
  indicator:
    metadata:
      name: ok-requests
    spec:
      ratioMetric:
        counter: true
        good:
          metricSource:
            type: Prometheus
            spec:
              query: sum(search_requests_total{code!~"5.."})
        total:
          metricSource:
            type: Prometheus
            spec:
              query: sum(search_requests_total)
  budgetingMethod: Occurrences
  timeWindow:
    - duration: 28d
      isRolling: true
  objectives:
    - target: 0.999
"""


def _sub(text: str, old: str, new: str) -> str:
    assert old in text, old
    return text.replace(old, new, 1)


# (id, file text, [(line, column, exact message including the hint)])
CASES: list[tuple[str, str, list[tuple[int, int, str]]]] = [
    (
        "objective-as-ratio",
        _sub(BASE, "99.9", "0.999"),
        [
            (
                6,
                16,
                "objective 0.999 looks like a ratio, but objectives are percentages — write 99.9, not 0.999",
            )
        ],
    ),
    (
        "objective-over-100",
        _sub(BASE, "99.9", "150"),
        [
            (
                6,
                16,
                "objective 150 is out of range — it is a percentage, 0 < objective < 100 (write 99.9, not 0.999)",
            )
        ],
    ),
    (
        "objective-not-a-number",
        _sub(BASE, "99.9", "high"),
        [(6, 16, "objective: 'high' is not a number")],
    ),
    (
        "missing-window",
        _sub(BASE, "[{{window}}]))\n        total", "[5m]))\n        total"),
        [
            (
                9,
                14,
                "bad: query has no {{window}} placeholder — write the range as [{{window}}], "
                'e.g. sum(rate(http_requests_total{code=~"5.."}[{{window}}]))',
            )
        ],
    ),
    (
        "unknown-key-did-you-mean",
        _sub(BASE, "objective:", "objectve:"),
        [(6, 5, "unknown key 'objectve' — did you mean 'objective'?")],
    ),
    (
        "unknown-top-level-key",
        _sub(BASE, "tier:", "teir:"),
        [(3, 1, "unknown key 'teir' — did you mean 'tier'?")],
    ),
    (
        "unknown-key-no-close-match",
        _sub(BASE, "tier: critical", "tier: critical\nzzz: 1"),
        [
            (
                4,
                1,
                "unknown key 'zzz' — allowed keys: anomaly, apiVersion, budget_policy, customer_facing, datasource, depends_on, group_by, labels, maintenance, max_groups, owner, service, slos, tier",
            )
        ],
    ),
    (
        "missing-sli",
        BASE.split("    sli:")[0],
        [
            (
                5,
                5,
                "missing required key 'sli' — add sli: with one of events, latency or availability",
            )
        ],
    ),
    (
        "missing-total-points-at-events",
        _sub(BASE, "        total: sum(rate(http_requests_total[{{window}}]))\n", ""),
        [
            (
                8,
                7,
                "missing required key 'total' — add total: <PromQL counting all events over [{{window}}]>",
            )
        ],
    ),
    (
        "missing-service",
        _sub(BASE, "service: api\n", ""),
        [(1, 1, "missing required key 'service' — add service: <name>, e.g. service: api")],
    ),
    (
        "wrong-type-slos-mapping",
        "apiVersion: slo-engine/v1\nservice: api\nslos: {}\n",
        [(3, 7, "'slos' must be a list (lines starting with '- '), found a mapping")],
    ),
    (
        "wrong-type-label-value",
        _sub(BASE, "tier: critical", "tier: critical\nlabels:\n  team: 5"),
        [(5, 9, "'team' must be a string, found int 5 — quote the value")],
    ),
    (
        "tier-not-allowed",
        _sub(BASE, "critical", "urgent"),
        [(3, 7, "'tier' cannot be 'urgent' — use one of 'critical', 'important' or 'standard'")],
    ),
    (
        "duplicate-key",
        _sub(BASE, "    sli:", "    objective: 99\n    sli:"),
        [
            (
                7,
                5,
                "duplicate key 'objective' (first at line 6) — YAML keeps only the last one; remove or rename one of them",
            )
        ],
    ),
    (
        "period-not-a-duration",
        _sub(BASE, "    sli:", "    period: 30 days\n    sli:"),
        [
            (
                7,
                13,
                "period: '30 days' is not a duration — write it like 30s, 5m, 1h30m, 28d (units ms s m h d w y)",
            )
        ],
    ),
    (
        "period-bare-number",
        _sub(BASE, "    sli:", "    period: 30\n    sli:"),
        [(7, 13, "period: 30 is not a duration — write it as a string like 30d, 1h or 500ms")],
    ),
    (
        "threshold-not-a-duration",
        _sub(LATENCY, "500ms", "fast"),
        [
            (
                11,
                20,
                "threshold: 'fast' is not a duration — write it like 30s, 5m, 1h30m, 28d (units ms s m h d w y)",
            )
        ],
    ),
    (
        "histogram-with-suffix",
        _sub(LATENCY, "http_request_duration_seconds", "http_request_duration_seconds_bucket"),
        [
            (
                9,
                20,
                "histogram: give the histogram's base name without '_bucket', e.g. 'http_request_duration_seconds'",
            )
        ],
    ),
    (
        "unbalanced-parenthesis",
        _sub(BASE, '"5.."}[{{window}}]))', '"5.."}[{{window}}])'),
        [(9, 14, "unbalanced PromQL: '(' at character 4 is never closed — add the matching ')'")],
    ),
    (
        "latency-selector-unterminated-quote",
        _sub(LATENCY, 'selector: job="api"', 'selector: job="api'),
        [
            (
                10,
                19,
                'unbalanced PromQL: the string opened with " at character 5 is never closed — close it with a matching "',
            )
        ],
    ),
    (
        "unterminated-quote",
        _sub(BASE, 'code=~"5.."', 'code=~"5..'),
        [
            (
                9,
                14,
                'unbalanced PromQL: the string opened with " at character 36 is never closed — close it with a matching "',
            )
        ],
    ),
    (
        "stray-closing-bracket",
        _sub(
            BASE,
            "total: sum(rate(http_requests_total[{{window}}]))",
            "total: sum(rate(http_requests_total[{{window}}])))",
        ),
        [
            (
                10,
                16,
                "unbalanced PromQL: ')' at character 43 closes nothing — remove it or add the matching opening bracket",
            )
        ],
    ),
    (
        "yaml-indentation",
        _sub(BASE, "    objective: 99.9", "   objective: 99.9"),
        [
            (
                6,
                4,
                "invalid YAML: expected <block end>, but found '<block mapping start>' (while parsing a block collection) — check the indentation: keys of one mapping must line up",
            )
        ],
    ),
    (
        "yaml-tab",
        _sub(BASE, "    objective: 99.9", "\tobjective: 99.9"),
        [
            (
                6,
                1,
                "invalid YAML: found character '\\t' that cannot start any token (while scanning for the next token) — indent with spaces, YAML does not allow tabs",
            )
        ],
    ),
    (
        "two-sli-kinds",
        BASE + "      availability:\n        metric: up\n",
        [
            (
                11,
                7,
                "an sli has exactly one kind: events, latency or availability (found events, availability) — keep one kind",
            )
        ],
    ),
    (
        "bad-and-good",
        _sub(BASE, "        total:", "        good: sum(rate(x[{{window}}]))\n        total:"),
        [(9, 9, "events: give exactly one of `bad` or `good` next to `total`")],
    ),
    (
        "bad-label-name",
        _sub(BASE, "tier: critical", "tier: critical\nlabels:\n  team-name: x"),
        [
            (
                5,
                3,
                "'team-name' is not a valid Prometheus label name — use letters, digits and '_', not starting with a digit (e.g. team_name)",
            )
        ],
    ),
    (
        "bad-alert-label-name",
        BASE + "    alerting:\n      labels:\n        bad-label: x\n",
        [
            (
                13,
                9,
                "'bad-label' is not a valid Prometheus label name — use letters, digits and '_', not starting with a digit (e.g. team_name)",
            )
        ],
    ),
    ("empty-file", "", [(1, 1, "file is empty — write an SLO spec")]),
    ("comments-only", "# nothing yet\n", [(1, 1, "file is empty — write an SLO spec")]),
    (
        "unsupported-apiversion",
        _sub(BASE, "slo-engine/v1", "slo-engine/v2"),
        [(1, 13, "unsupported apiVersion 'slo-engine/v2' — write apiVersion: slo-engine/v1")],
    ),
    (
        "unsupported-openslo-version",
        _sub(OPENSLO, "openslo/v1", "openslo/v1alpha"),
        [
            (
                1,
                13,
                "unsupported apiVersion 'openslo/v1alpha' — only openslo/v1 of OpenSLO is supported",
            )
        ],
    ),
    (
        "not-an-slo-spec",
        "groups:\n  - name: example\n    rules: []\n",
        [
            (
                1,
                1,
                "not an SLO spec: no apiVersion or version key — accepted formats: apiVersion: slo-engine/v1",
            )
        ],
    ),
    (
        "list-document",
        "- a\n- b\n",
        [(1, 1, "not an SLO spec: the document is a list — accepted formats:")],
    ),
    (
        "missing-apiversion",
        _sub(BASE, "apiVersion: slo-engine/v1\n", ""),
        [
            (
                1,
                1,
                "missing required key 'apiVersion' — start the file with apiVersion: slo-engine/v1",
            )
        ],
    ),
    (
        "invalid-slo-name",
        _sub(BASE, "name: availability", "name: Availability"),
        [
            (
                5,
                11,
                "name: 'Availability' is not a valid name — use lowercase letters, digits, '-' and '_' (e.g. availability, latency-p95)",
            )
        ],
    ),
    (
        "duplicate-slo-name-in-file",
        BASE
        + "  - name: availability\n    objective: 99\n    sli:\n      availability:\n        metric: up\n",
        [
            (
                11,
                11,
                "SLO name 'availability' appears twice in service 'api' — first defined at line 5; rename one",
            )
        ],
    ),
    (
        "period-too-short",
        _sub(BASE, "    sli:", "    period: 5m\n    sli:"),
        [(7, 13, "period is the rolling SLO window, at least 1h (usually 28d or 30d)")],
    ),
    (
        "burn-rate-windows-reversed",
        BASE
        + "    alerting:\n      burn_rates:\n        - severity: page\n          long_window: 5m\n"
        "          short_window: 1h\n          factor: 14.4\n",
        [(13, 11, "short_window must be shorter than long_window (usually long ÷ 12)")],
    ),
    (
        "burn-rate-bad-severity",
        BASE
        + "    alerting:\n      burn_rates:\n        - severity: sms\n          long_window: 1h\n"
        "          short_window: 5m\n          factor: 14.4\n",
        [(13, 21, "'severity' cannot be 'sms' — use one of 'page' or 'ticket'")],
    ),
    (
        "low-traffic-confidence",
        BASE + "    alerting:\n      low_traffic:\n        confidence: 1.5\n",
        [(13, 21, "confidence is a probability: 0.5 ≤ confidence < 1, e.g. 0.99")],
    ),
    (
        "alerting-unknown-key",
        BASE + "    alerting:\n      pager: false\n",
        [(12, 7, "unknown key 'pager' — did you mean 'page'?")],
    ),
    (
        "sloth-unknown-key",
        _sub(SLOTH, "error_query", "errors_query"),
        [(8, 9, "unknown key 'errors_query' in 'events' — did you mean 'error_query'?")],
    ),
    (
        "sloth-objective-100",
        _sub(SLOTH, "99.5", "100"),
        [
            (
                5,
                16,
                "objective 100 is out of range — it is a percentage, 0 < objective < 100 (write 99.9, not 0.999)",
            )
        ],
    ),
    (
        "sloth-missing-window-maps-to-error-query",
        _sub(SLOTH, "[{{.window}}]))\n        total", "[5m]))\n        total"),
        [(8, 22, "error_query: query has no {{window}} placeholder")],
    ),
    (
        "sloth-plugin",
        _sub(
            SLOTH,
            "      events:\n"
            '        error_query: sum(rate(http_requests_total{code=~"5.."}[{{.window}}]))\n'
            "        total_query: sum(rate(http_requests_total[{{.window}}]))",
            "      plugin:\n        id: sloth-common/kubernetes/apiserver/availability",
        ),
        [
            (
                7,
                7,
                "Sloth SLI plugins are not supported — write the plugin's queries out as sli.events (error_query, total_query)",
            )
        ],
    ),
    (
        "sloth-version",
        _sub(SLOTH, "prometheus/v1", "prometheus/v2"),
        [(1, 10, "unsupported Sloth version 'prometheus/v2' — write version: \"prometheus/v1\"")],
    ),
    (
        "sloth-disable-not-bool",
        SLOTH + "      page_alert:\n        disable: maybe\n",
        [(13, 18, "'disable' must be true or false, found str 'maybe'")],
    ),
    (
        "openslo-ratio-timeslices",
        _sub(OPENSLO, "budgetingMethod: Occurrences", "budgetingMethod: RatioTimeslices"),
        [
            (
                23,
                20,
                "budgetingMethod RatioTimeslices is not supported — slo-engine counts events (Occurrences) or good slices (Timeslices)",
            )
        ],
    ),
    (
        "openslo-calendar-window",
        _sub(OPENSLO, "isRolling: true", "isRolling: false"),
        [
            (
                25,
                17,
                "a calendar window (isRolling: false) of '28d' is not a week, month or quarter — write duration: 1w, 1M or 1Q, or isRolling: true for a rolling period",
            )
        ],
    ),
    (
        "openslo-threshold-metric",
        _sub(OPENSLO, "      ratioMetric:", "      thresholdMetric: {}\n      ratioMetric:"),
        [
            (
                11,
                7,
                "thresholdMetric is not supported — express the SLI as a ratioMetric (good or bad, and total)",
            )
        ],
    ),
    (
        "openslo-non-prometheus-source",
        _sub(OPENSLO, "type: Prometheus", "type: Datadog"),
        [
            (
                15,
                19,
                "metric source 'Datadog' is not supported — slo-engine reads Prometheus: type: Prometheus with spec.query",
            )
        ],
    ),
    (
        "openslo-target-as-percent",
        _sub(OPENSLO, "target: 0.999", "target: 99.9"),
        [
            (
                28,
                15,
                "target 99.9 is out of range — OpenSLO's target is a fraction, 0 < target < 1 (write 0.999, or targetPercent: 99.9)",
            )
        ],
    ),
    (
        "openslo-two-objectives",
        OPENSLO + "    - target: 0.99\n",
        [
            (
                29,
                7,
                "more than one objective is not supported — slo-engine has one objective per SLO; write one SLO document per target",
            )
        ],
    ),
    (
        "openslo-unknown-indicator-ref",
        _sub(
            OPENSLO,
            OPENSLO[OPENSLO.index("  indicator:") : OPENSLO.index("  budgetingMethod")],
            "  indicatorRef: search-ok\n",
        ),
        [
            (
                7,
                17,
                "indicatorRef 'search-ok' names no OpenSLO SLI — define a kind: SLI with metadata.name 'search-ok' in the loaded files (known: none loaded)",
            )
        ],
    ),
    (
        "openslo-unwindowable-query",
        _sub(OPENSLO, "query: sum(search_requests_total)", "query: sum(search_requests_total) / 2"),
        [(22, 22, "cannot turn this query into a rate over a window — only a counter")],
    ),
    (
        "openslo-unknown-key",
        _sub(OPENSLO, "budgetingMethod:", "budgetMethod:"),
        [(23, 3, "unknown key 'budgetMethod' in 'spec' — did you mean 'budgetingMethod'?")],
    ),
    # --- grouped SLOs: a query's own grouping must be the SLO's group_by ---------------
    (
        "undeclared-by",
        _sub(BASE, "bad: sum(rate(", "bad: sum by (route) (rate("),
        [
            (
                9,
                14,
                "`by (route)` makes one series per route, but the SLO has no group_by: they "
                "would be summed into one SLO silently — add `group_by: [route]` to the SLO, "
                "or aggregate with sum(...) to get one SLO over all routes",
            )
        ],
    ),
    (
        "undeclared-by-trailing-clause",
        _sub(
            BASE,
            "total: sum(rate(http_requests_total[{{window}}]))",
            "total: sum(rate(http_requests_total[{{window}}])) by (region, zone)",
        ),
        [
            (
                10,
                16,
                "`by (region, zone)` makes one series per combination of region, zone, but "
                "the SLO has no group_by: they would be summed into one SLO silently — add "
                "`group_by: [region, zone]` to the SLO, or aggregate with sum(...) to get one "
                "SLO over all regions and zones",
            )
        ],
    ),
    (
        "group-by-mismatch",
        _sub(
            _sub(BASE, "    objective: 99.9\n", "    objective: 99.9\n    group_by: [route]\n"),
            "total: sum(rate(",
            "total: sum by (method) (rate(",
        ),
        [
            (
                11,
                16,
                "`by (method)` does not match the SLO's group_by [route] — aggregate with "
                "sum by (route) (...) or sum(...), or set `group_by: [method]`",
            )
        ],
    ),
    (
        "without-in-grouped-slo",
        _sub(
            _sub(BASE, "    objective: 99.9\n", "    objective: 99.9\n    group_by: [route]\n"),
            "bad: sum(rate(",
            "bad: sum without (instance) (rate(",
        ),
        [
            (
                10,
                14,
                "`without (instance)` keeps whatever other labels the series have, not the "
                "SLO's group_by [route] — aggregate with sum by (route) (...) or sum(...)",
            )
        ],
    ),
    (
        "group-by-service-default-mismatch",
        _sub(
            _sub(BASE, "tier: critical\n", "tier: critical\ngroup_by: [region]\n"),
            "bad: sum(rate(",
            "bad: sum by (route) (rate(",
        ),
        [
            (
                10,
                14,
                "`by (route)` does not match the SLO's group_by [region] — aggregate with "
                "sum by (region) (...) or sum(...), or set `group_by: [route]`",
            )
        ],
    ),
    (
        "group-by-reserved-label",
        _sub(BASE, "tier: critical\n", "tier: critical\ngroup_by: [route, severity]\n"),
        [
            (
                4,
                19,
                "cannot group by 'severity', an alert label slo-engine sets itself — group by "
                "the label that tells the groups apart, e.g. route or region",
            )
        ],
    ),
    (
        "group-by-internal-label",
        _sub(
            BASE,
            "    objective: 99.9\n",
            "    objective: 99.9\n    group_by:\n      - __address__\n",
        ),
        [(8, 9, "cannot group by '__address__' — labels starting with __ are Prometheus' own")],
    ),
    (
        "group-by-fixed-label",
        _sub(
            BASE,
            "tier: critical\n",
            "tier: critical\nlabels:\n  route: all\ngroup_by: [route]\n",
        ),
        [
            (
                6,
                12,
                "cannot group by 'route': the SLO also sets route='all' as a fixed label, which "
                "would overwrite every group's value — remove route from the SLO's labels, or "
                "group by another label",
            )
        ],
    ),
    (
        "max-groups-out-of-range",
        _sub(BASE, "    objective: 99.9\n", "    objective: 99.9\n    max_groups: 0\n"),
        [
            (
                7,
                17,
                "max_groups 0 is out of range — it caps the instances of one grouped SLO: "
                "1 ≤ max_groups ≤ 10000 (default 200)",
            )
        ],
    ),
]


def _load(tmp_path: Path, text: str, name: str = "spec.yaml") -> list[tuple[int, int, str]]:
    (tmp_path / name).write_text(text)
    result = load_specs([tmp_path / name])
    assert all(e.file == str(tmp_path / name) for e in result.errors)
    return [(e.line, e.column, e.text) for e in result.errors]


@pytest.mark.parametrize(("text", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_invalid_spec_points_at_line_and_column(
    tmp_path: Path, text: str, expected: list[tuple[int, int, str]]
) -> None:
    errors = _load(tmp_path, text)
    assert len(errors) == len(expected), errors
    for (line, column, message), (want_line, want_column, want) in zip(
        errors, expected, strict=True
    ):
        assert (line, column) == (want_line, want_column), (message, errors)
        assert message.startswith(want), message


def test_there_are_at_least_25_invalid_cases() -> None:
    assert len(CASES) >= 25


def test_valid_base_documents_are_valid(tmp_path: Path) -> None:
    for i, text in enumerate((BASE, LATENCY, SLOTH, OPENSLO)):
        assert _load(tmp_path, text, f"ok{i}.yaml") == []


def test_error_string_format(tmp_path: Path) -> None:
    path = tmp_path / "api.yaml"
    path.write_text(_sub(BASE, "99.9", "150"))
    (error,) = load_specs([path]).errors
    assert str(error) == (
        f"{path}:6:16: objective 150 is out of range — it is a percentage, "
        "0 < objective < 100 (write 99.9, not 0.999)"
    )


def test_duplicate_slo_ids_across_files_point_at_both(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(BASE)
    (tmp_path / "b.yaml").write_text("# a copy of a.yaml\n" + BASE)
    result = load_specs([tmp_path])
    a, b = str(tmp_path / "a.yaml"), str(tmp_path / "b.yaml")
    assert [(e.file, e.line, e.column) for e in result.errors] == [(a, 5, 11), (b, 6, 11)]
    assert result.errors[0].text.startswith(
        f"duplicate SLO id 'api/availability' (also at {b}:6:11)"
    )
    assert result.errors[1].text.startswith(
        f"duplicate SLO id 'api/availability' (also at {a}:5:11)"
    )
    assert result.slos == []  # neither copy is trusted


def test_depends_on_unknown_service_is_a_warning(tmp_path: Path) -> None:
    (tmp_path / "api.yaml").write_text(
        _sub(BASE, "tier: critical", "tier: critical\ndepends_on: [databse]")
    )
    (tmp_path / "db.yaml").write_text(
        _sub(_sub(BASE, "service: api", "service: database"), "name: availability", "name: up")
    )
    result = load_specs([tmp_path])
    assert result.errors == []
    (warning,) = result.warnings
    assert (warning.line, warning.column, warning.severity) == (4, 14, "warning")
    assert warning.text == (
        "depends_on names service 'databse', which no loaded spec defines — did you mean 'database'?"
    )
    assert str(warning).endswith("4:14: warning: " + warning.text)
    assert len(result.slos) == 2


def test_second_document_errors_use_file_lines(tmp_path: Path) -> None:
    other = _sub(_sub(BASE, "service: api", "service: web"), "99.9", "101")
    errors = _load(tmp_path, BASE + "---\n" + other)
    assert [(line, col) for line, col, _ in errors] == [(17, 16)]


def test_openslo_error_lands_in_the_sli_document_of_another_file(tmp_path: Path) -> None:
    slo = _sub(
        OPENSLO,
        OPENSLO[OPENSLO.index("  indicator:") : OPENSLO.index("  budgetingMethod")],
        "  indicatorRef: ok-requests\n",
    )
    sli = (
        "apiVersion: openslo/v1\nkind: SLI\nmetadata:\n  name: ok-requests\nspec:\n"
        "  ratioMetric:\n    counter: true\n    good:\n      metricSource:\n        type: Prometheus\n"
        "        spec:\n          query: sum(ok_total)\n    total:\n      metricSource:\n"
        "        type: Prometheus\n        spec:\n          query: sum(requests_total) * 2\n"
    )
    (tmp_path / "slo.yaml").write_text(slo)
    (tmp_path / "sli.yaml").write_text(sli)
    result = load_specs([tmp_path])
    (error,) = result.errors
    assert (error.file, error.line, error.column) == (str(tmp_path / "sli.yaml"), 17, 18)


@pytest.mark.skipif(
    promql.promtool_path() is None, reason="promtool not installed (Debian: prometheus)"
)
def test_promtool_parse_error_maps_to_the_query_line(tmp_path: Path) -> None:
    text = _sub(
        BASE,
        "total: sum(rate(http_requests_total[{{window}}]))",
        "total: sum(rate(http_requests_total[{{window}}])) by",
    )
    text += '  - name: up\n    objective: 99\n    sli:\n      availability:\n        metric: up{job="db"} ==\n'
    result = load_specs([_write(tmp_path, text)])
    assert result.promql_parsed
    assert [(e.line, e.column) for e in result.errors] == [(10, 16), (15, 17)]
    assert result.errors[0].text.startswith(
        'invalid PromQL: parse error: unexpected end of input in grouping opts, expected "("'
    )
    assert "promtool could not parse this query" in result.errors[0].text
    assert result.slos == []


@pytest.mark.skipif(
    promql.promtool_path() is None, reason="promtool not installed (Debian: prometheus)"
)
def test_sloth_raw_query_error_reported_once(tmp_path: Path) -> None:
    text = _sub(
        SLOTH,
        "      events:\n"
        '        error_query: sum(rate(http_requests_total{code=~"5.."}[{{.window}}]))\n'
        "        total_query: sum(rate(http_requests_total[{{.window}}]))",
        "      raw:\n        error_ratio_query: avg_over_time(ratio[{{.window}}]) by",
    )
    result = load_specs([_write(tmp_path, text)])
    assert [(e.line, e.column) for e in result.errors] == [(8, 28)]
    assert result.errors[0].text.startswith("invalid PromQL: ")


def test_without_promtool_balance_and_placeholder_still_checked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(promql, "promtool_path", lambda: None)
    # Nor promql-parser: the balance check is all that is left (tests/test_promql_parser.py
    # covers the parser).
    monkeypatch.setattr(promql, "promql_parser", lambda: None)
    # Balanced and with the placeholder, but not PromQL: only promtool could tell.
    text = _sub(
        BASE,
        "total: sum(rate(http_requests_total[{{window}}]))",
        "total: sum(rate(http_requests_total[{{window}}])) by",
    )
    result = load_specs([_write(tmp_path, text)])
    assert result.promql_parsed is False
    assert result.errors == []
    unbalanced = load_specs([_write(tmp_path, _sub(BASE, "[{{window}}]))\n", "[{{window}}])\n"))])
    assert unbalanced.promql_parsed is False
    assert [(e.line, e.column) for e in unbalanced.errors] == [(9, 14)]


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "spec.yaml"
    path.write_text(text)
    return path


def test_one_round_reports_balance_and_ratio_errors_of_an_invalid_service(tmp_path: Path) -> None:
    """A service that fails model validation still gets its queries bracket-checked and its
    ratio-like objectives flagged, so the SRE sees every problem in one `validate` run."""
    text = _sub(BASE, "tier: critical", "tier: critcal")
    text = _sub(text, "[{{window}}]))\n        total", "[{{window}}])\n        total")
    text = _sub(text, "objective: 99.9", "objective: 0.999")
    found = _load(tmp_path, text)
    assert (3, 7) in {(line, col) for line, col, _ in found}
    assert any(
        (line, col) == (9, 14) and "unbalanced PromQL" in msg and "add the matching ')'" in msg
        for line, col, msg in found
    ), found
    assert any(
        (line, col) == (6, 16) and "looks like a ratio" in msg and "write 99.9, not 0.999" in msg
        for line, col, msg in found
    ), found
