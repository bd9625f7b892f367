"""PromQL checked without promtool: the promql-parser package parses every SLI query in
process, so `validate` in a slim image or a pip-only CI still rejects invalid PromQL at the
query's line — and with promtool installed, promtool still decides."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from engine.spec import promql
from engine.spec.loader import load_specs

ROOT = Path(__file__).resolve().parents[1]
SPEC = """apiVersion: slo-engine/v1
service: web
slos:
  - name: availability
    objective: 99.9
    sli:
      events:
        bad: sum(rate(http_requests_total{code=~"5.."}[{{window}}])) by
        total: sum(rate(http_requests_total[{{window}}]))
  - name: up
    objective: 99
    sli:
      availability:
        metric: up{job=~"("}
"""


def test_parser_finds_what_only_a_parser_can(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(promql, "promtool_path", lambda: None)
    path = tmp_path / "web.yaml"
    path.write_text(SPEC)
    result = load_specs([path])
    assert result.promql_parsed
    assert [(e.line, e.column) for e in result.errors] == [(8, 14), (14, 17)]
    assert all(e.text.startswith("invalid PromQL: ") for e in result.errors)
    assert "illegal regex" in result.errors[1].text
    assert result.slos == []


def test_parser_accepts_every_bundled_spec(monkeypatch) -> None:
    monkeypatch.setattr(promql, "promtool_path", lambda: None)
    for directory in ("slo_specs", "examples", "tests/promtool/specs"):
        result = load_specs([ROOT / directory])
        assert result.promql_parsed and result.errors == [], (directory, result.errors)


def test_validate_with_promtool_hidden_from_path(tmp_path: Path) -> None:
    path = tmp_path / "web.yaml"
    path.write_text(SPEC)
    empty_bin = tmp_path / "bin"
    empty_bin.mkdir()
    proc = subprocess.run(
        [sys.executable, "-m", "engine", "validate", str(path)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PATH": str(empty_bin)},
        timeout=120,
    )
    assert proc.returncode == 1, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].startswith(f"{path}:8:14: invalid PromQL: ")
    assert lines[1].startswith(f"{path}:14:17: invalid PromQL: illegal regex")


def test_no_parser_at_all_keeps_the_balance_check(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(promql, "promtool_path", lambda: None)
    monkeypatch.setattr(promql, "promql_parser", lambda: None)
    path = tmp_path / "web.yaml"
    path.write_text(SPEC)
    result = load_specs([path])
    assert result.promql_parsed is False
    assert result.errors == []


@pytest.mark.skipif(promql.promtool_path() is None, reason="promtool not installed")
def test_promtool_decides_when_installed(tmp_path: Path, monkeypatch) -> None:
    def refuse() -> None:
        raise AssertionError("promql-parser used although promtool is installed")

    monkeypatch.setattr(promql, "promql_parser", refuse)
    path = tmp_path / "web.yaml"
    path.write_text(SPEC)
    result = load_specs([path])
    assert [(e.line, e.column) for e in result.errors] == [(8, 14), (14, 17)]
    assert "promtool could not parse this query" in result.errors[0].text
