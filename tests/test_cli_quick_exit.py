"""One-shot commands skip the interpreter's teardown (engine.cli.QUICK_EXIT): what they
wrote must still arrive whole, through a pipe, with their exit code."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from engine.cli import QUICK_EXIT

SPEC = """\
apiVersion: slo-engine/v1
service: svc-{i}
slos:
  - name: availability
    objective: 99.9
    sli:
      events:
        bad: sum(rate(http_requests_total{{service="svc-{i}",code="500"}}[{{{{window}}}}]))
        total: sum(rate(http_requests_total{{service="svc-{i}"}}[{{{{window}}}}]))
"""


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "engine", *args], capture_output=True, text=True, timeout=120
    )


def test_only_one_shot_commands_exit_quickly() -> None:
    assert {"evaluate", "validate"} == QUICK_EXIT


def test_a_large_report_arrives_whole(tmp_path: Path) -> None:
    for i in range(400):
        (tmp_path / f"svc-{i}.yaml").write_text(SPEC.format(i=i))
    proc = _run("validate", str(tmp_path), "--format", "json")
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)  # complete through the pipe
    assert len(report["slos"]) == 400 and report["valid"] is True


def test_the_exit_code_and_the_last_line_of_stderr_survive(tmp_path: Path) -> None:
    (tmp_path / "web.yaml").write_text(SPEC.format(i=0).replace("objective", "objectve"))
    proc = _run("evaluate", "--specs", str(tmp_path), "--prometheus-url", "http://127.0.0.1:9")
    assert proc.returncode == 1
    assert proc.stderr.rstrip().endswith("error(s) in the specs; nothing evaluated")
