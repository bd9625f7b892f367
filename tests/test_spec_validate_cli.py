"""`slo-engine validate`: exit codes, the one-line-per-problem text and the JSON report."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from engine.cli import _register, app
from engine.commands.validate import PROMTOOL_MISSING
from engine.spec import promql

ROOT = Path(__file__).resolve().parent.parent
CLI = ROOT / ".venv" / "bin" / "slo-engine"
BROKEN = """\
apiVersion: slo-engine/v1
service: web
slos:
  - name: availability
    objectve: 99.9
    sli:
      events:
        bad: sum(rate(http_requests_total{code=~"5.."}[5m]))
        total: sum(rate(http_requests_total[{{window}}]))
"""

_register()
runner = CliRunner()


def _broken(tmp_path: Path) -> Path:
    path = tmp_path / "web.yaml"
    path.write_text(BROKEN)
    return path


def test_bundled_specs_are_valid() -> None:
    result = runner.invoke(app, ["validate", str(ROOT / "slo_specs")])
    assert result.exit_code == 0, result.output
    assert result.stdout.strip().splitlines()[-1] == "ok: 5 SLOs in 2 files"


def test_invalid_spec_exits_1_with_sorted_positions(tmp_path: Path) -> None:
    path = _broken(tmp_path)
    result = runner.invoke(app, ["validate", str(path), str(ROOT / "slo_specs")])
    assert result.exit_code == 1
    assert result.stdout.splitlines() == [
        f"{path}:5:5: unknown key 'objectve' — did you mean 'objective'?",
        f"{path}:8:14: bad: query has no {{{{window}}}} placeholder — write the range as "
        '[{{window}}], e.g. sum(rate(http_requests_total{code=~"5.."}[{{window}}]))',
    ]
    assert "invalid: 2 errors in 1 file" in result.stderr


def test_json_report(tmp_path: Path) -> None:
    ok = runner.invoke(app, ["validate", "--format", "json", str(ROOT / "slo_specs")])
    assert ok.exit_code == 0
    report = json.loads(ok.stdout)
    assert report["valid"] is True
    assert report["slos"] == [
        "api/availability",
        "api/latency-p95",
        "database/availability",
        "database/durability",
        "database/backup-freshness",
    ]
    assert report["errors"] == []

    path = _broken(tmp_path)
    bad = runner.invoke(app, ["validate", str(path), "--format", "json"])
    assert bad.exit_code == 1
    report = json.loads(bad.stdout)
    assert report["valid"] is False
    assert report["slos"] == []
    assert report["errors"][0] == {
        "file": str(path),
        "line": 5,
        "column": 5,
        "message": "unknown key 'objectve' — did you mean 'objective'?",
    }
    assert [(e["line"], e["column"]) for e in report["errors"]] == [(5, 5), (8, 14)]


def test_usage_errors_exit_2(tmp_path: Path) -> None:
    none = runner.invoke(app, ["validate"])
    assert none.exit_code == 2
    assert "give at least one spec file or directory" in none.stderr
    missing = runner.invoke(app, ["validate", str(tmp_path / "nope")])
    assert missing.exit_code == 2
    assert f"no such file or directory: {tmp_path / 'nope'}" in missing.stderr
    bad_format = runner.invoke(app, ["validate", "--format", "xml", str(ROOT / "slo_specs")])
    assert bad_format.exit_code == 2


def test_warnings_do_not_fail(tmp_path: Path) -> None:
    spec = (ROOT / "slo_specs" / "api.yaml").read_text()
    path = tmp_path / "api.yaml"
    path.write_text(spec)
    result = runner.invoke(app, ["validate", str(path)])
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert lines[0].startswith(f"{path}:7:")
    assert "warning: depends_on names service 'database'" in lines[0]
    assert lines[-1] == "ok: 2 SLOs in 1 files"


def test_without_promtool_says_so_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(promql, "promtool_path", lambda: None)
    # Nor promql-parser: the balance check is all that is left (tests/test_promql_parser.py
    # covers the parser).
    monkeypatch.setattr(promql, "promql_parser", lambda: None)
    result = runner.invoke(app, ["validate", str(ROOT / "slo_specs"), str(ROOT / "examples")])
    assert result.exit_code == 0
    assert result.stderr.count(PROMTOOL_MISSING) == 1
    report = json.loads(
        runner.invoke(app, ["validate", "-f", "json", str(ROOT / "slo_specs")]).stdout
    )
    assert report["promql_parsed"] is False


# --- the installed console script, as CI and users run it ----------------------------------


def _run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    command = [str(CLI)] if CLI.exists() else [sys.executable, "-m", "engine"]
    return subprocess.run(
        [*command, *args], capture_output=True, text=True, cwd=ROOT, env=env, timeout=120
    )


def test_console_script_validates_bundled_specs() -> None:
    proc = _run("validate", "slo_specs")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.strip() == "ok: 5 SLOs in 2 files"


def test_console_script_invalid_and_usage(tmp_path: Path) -> None:
    path = _broken(tmp_path)
    proc = _run("validate", str(path))
    assert proc.returncode == 1
    assert proc.stdout.splitlines()[0].startswith(f"{path}:5:5: unknown key 'objectve'")
    assert _run("validate").returncode == 2
    assert _run("validate", str(tmp_path / "missing.yaml")).returncode == 2
    report = json.loads(_run("validate", "--format", "json", str(path)).stdout)
    assert report["valid"] is False and len(report["errors"]) == 2


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool not installed")
def test_console_script_promtool_error_and_fallback(tmp_path: Path) -> None:
    path = tmp_path / "web.yaml"
    path.write_text(BROKEN.replace("objectve", "objective").replace("[5m]))", "[{{window}}])) by"))
    proc = _run("validate", str(path))
    assert proc.returncode == 1
    assert proc.stdout.splitlines()[0].startswith(f"{path}:8:14: invalid PromQL: parse error")
    # With no promtool on PATH, promql-parser finds the same error at the same query (it
    # gives no position inside the query; promtool's line:column was the query's anyway).
    empty_bin = tmp_path / "bin"
    empty_bin.mkdir()
    env = {**os.environ, "PATH": str(empty_bin)}
    fallback = _run("validate", str(path), env=env)
    assert fallback.returncode == 1, fallback.stdout + fallback.stderr
    assert fallback.stdout.splitlines()[0].startswith(f"{path}:8:14: invalid PromQL: ")
    assert "promql-parser could not parse this query" in fallback.stdout
    assert PROMTOOL_MISSING not in fallback.stderr
