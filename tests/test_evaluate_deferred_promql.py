"""`evaluate` asks Prometheus while promtool parses the queries, and still refuses invalid
specs: promtool's verdict is read before anything is printed, and wins over a source that
cannot be reached (exit 1 with the located error, not exit 3)."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from engine.cli import _register, app
from engine.spec import promql
from engine.spec.loader import load_specs

SPEC = """\
apiVersion: slo-engine/v1
service: web
slos:
  - name: availability
    objective: 99.9
    sli:
      events:
        bad: sum(rate(http_requests_total{{code=~"5.."}}[{{{{window}}}}])) {extra}
        total: sum(rate(http_requests_total[{{{{window}}}}]))
"""
# Balanced brackets and quotes (the checks that run before promtool pass), invalid PromQL.
INVALID = "and and up"
DOWN = "http://127.0.0.1:9"

_register()
runner = CliRunner()

pytestmark = pytest.mark.skipif(promql.promtool_path() is None, reason="promtool not installed")


def _spec(tmp_path: Path, extra: str) -> Path:
    path = tmp_path / "web.yaml"
    path.write_text(SPEC.format(extra=extra))
    return path


def test_the_deferred_verdict_is_pending_until_settled(tmp_path: Path) -> None:
    loaded = load_specs([_spec(tmp_path, INVALID)], defer_promql=True)
    assert loaded.errors == [] and len(loaded.pending) == 1
    assert [s.id for s in loaded.slos] == ["web/availability"]  # not known bad yet
    loaded.settle()
    assert loaded.pending == []
    assert [(e.line, e.column) for e in loaded.errors] == [(8, 14)]
    assert "invalid PromQL" in loaded.errors[0].message
    # Without deferral the same error, and the SLO is left out at once.
    direct = load_specs([_spec(tmp_path, INVALID)])
    assert direct.errors == loaded.errors and direct.slos == []


def test_invalid_promql_exits_1_before_the_unreachable_source(tmp_path: Path) -> None:
    path = _spec(tmp_path, INVALID)
    result = runner.invoke(
        app, ["evaluate", "--specs", str(path), "--prometheus-url", DOWN, "--timeout", "2s"]
    )
    assert result.exit_code == 1, result.output
    said = result.stderr.replace("\n", "")  # rich wraps at the console's width
    assert f"{path}:8:14: invalid PromQL" in said
    assert "1 error(s) in the specs; nothing evaluated" in said
    assert result.stdout == ""


def test_valid_specs_reach_the_source(tmp_path: Path) -> None:
    path = _spec(tmp_path, "")
    result = runner.invoke(
        app, ["evaluate", "--specs", str(path), "--prometheus-url", DOWN, "--timeout", "2s"]
    )
    assert result.exit_code == 3, result.output
    assert "unavailable" in result.stderr
