"""Composite SLOs' generated rules against the real promtool: they pass `check rules`, and
`test rules` on hand-made counters shows the composite's recorded error ratio is the
event-weighted one and that its page fires."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from engine.generate.pipeline import GenerateError, generate
from engine.spec.loader import load_specs

needs_promtool = pytest.mark.skipif(
    shutil.which("promtool") is None,
    reason="needs promtool — install with: sudo apt-get install -y prometheus",
)


def _events(service: str, extra: str = "") -> str:
    return f"""apiVersion: slo-engine/v1
service: {service}
slos:
  - name: availability
    objective: 99.5
{extra}    sli:
      events:
        bad: sum(rate(http_requests_total{{job="{service}",code="500"}}[{{{{window}}}}]))
        total: sum(rate(http_requests_total{{job="{service}"}}[{{{{window}}}}]))
"""


SHOP = """apiVersion: slo-engine/v1
service: shop
slos:
  - name: checkout
    objective: 99.5
    sli:
      composite:
        objectives:
          - {slo: api/availability}
          - {slo: pay/availability, weight: 2}
"""

# api: 10 requests/s, 0.1/s failing (1 %); pay: 1 request/s, 0.5/s failing (50 %).
# checkout = (0.1 + 2·0.5) / (10 + 2·1) = 1.1 / 12; a weighted mean of the two ratios
# would be (0.01 + 2·0.5) / 3 ≈ 0.337.
UNIT_TEST = """rule_files: [api.rules.yml, pay.rules.yml, shop.rules.yml]
evaluation_interval: 1m
tests:
  - interval: 1m
    input_series:
      - series: 'http_requests_total{job="api",code="200"}'
        values: '0+594x180'
      - series: 'http_requests_total{job="api",code="500"}'
        values: '0+6x180'
      - series: 'http_requests_total{job="pay",code="200"}'
        values: '0+30x180'
      - series: 'http_requests_total{job="pay",code="500"}'
        values: '0+30x180'
    promql_expr_test:
      - expr: slo:error_ratio:rate1h{slo="shop/checkout"}
        eval_time: 90m
        exp_samples:
          - labels: 'slo:error_ratio:rate1h{service="shop",slo="shop/checkout",tier="standard"}'
            value: %s
      - expr: slo:total_events:rate1h{slo="shop/checkout"}
        eval_time: 90m
        exp_samples:
          - labels: 'slo:total_events:rate1h{service="shop",slo="shop/checkout",tier="standard"}'
            value: 12
      - expr: count by (severity) (ALERTS{slo="shop/checkout",alertstate="firing",long_window="1h"})
        eval_time: 90m
        exp_samples:
          - labels: '{severity="page"}'
            value: 1
"""


def _rules(tmp_path: Path, api_extra: str = "") -> dict[str, str]:
    specs = tmp_path / "specs"
    specs.mkdir()
    (specs / "api.yaml").write_text(_events("api", api_extra))
    (specs / "pay.yaml").write_text(_events("pay"))
    (specs / "shop.yaml").write_text(SHOP)
    loaded = load_specs([specs])
    assert not loaded.errors, loaded.errors
    return {f.path: f.text for f in generate(loaded.slos) if f.root == "rules"}


def _promtool(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["promtool", *map(str, args)], capture_output=True, text=True, timeout=300, check=False
    )


def _write(tmp_path: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        (tmp_path / name).write_text(text, encoding="utf-8")


@needs_promtool
def test_composite_rules_pass_promtool_and_record_the_weighted_ratio(tmp_path: Path) -> None:
    files = _rules(tmp_path)
    shop = files["shop.rules.yml"]
    assert 'slo:total_events:rate5m{slo="api/availability"}' in shop
    assert "of its components (api/availability, pay/availability) recorded none" in shop
    _write(tmp_path, files)
    checked = _promtool("check", "rules", *sorted(tmp_path.glob("*.rules.yml")))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    (tmp_path / "composite.test.yml").write_text(UNIT_TEST % repr(1.1 / 12))
    result = _promtool("test", "rules", tmp_path / "composite.test.yml")
    assert result.returncode == 0, result.stdout + result.stderr


@needs_promtool
def test_the_unit_test_fails_for_a_weighted_mean_of_ratios(tmp_path: Path) -> None:
    # The same test expecting the other semantics must fail: the check is real.
    _write(tmp_path, _rules(tmp_path))
    (tmp_path / "composite.test.yml").write_text(UNIT_TEST % repr((0.01 + 2 * 0.5) / 3))
    result = _promtool("test", "rules", tmp_path / "composite.test.yml")
    assert result.returncode != 0
    assert "slo:error_ratio:rate1h" in result.stdout + result.stderr


def test_a_component_without_the_composites_windows_is_refused(tmp_path: Path) -> None:
    own = """    alerting:
      burn_rates:
        - {severity: page, long_window: 2h, short_window: 10m, factor: 10}
"""
    with pytest.raises(GenerateError) as refused:
        _rules(tmp_path, own)
    message = str(refused.value)
    assert "composite shop/checkout: component api/availability does not record 5m" in message
    assert "give both the same burn_rates" in message
