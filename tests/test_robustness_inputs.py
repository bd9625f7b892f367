"""Issue #12, items 2-4: every malformed or out-of-range input is a located error with an
exit code, never a traceback; YAML cannot make the loader explode; one failing SLO or cycle
is contained and visible (docs/specs.md and docs/daemon.md, "Limits")."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from engine.cli import _register, app
from engine.daemon.config import ConfigError, load_config
from engine.spec import yaml_lines
from engine.spec.loader import load_specs

ROOT = Path(__file__).resolve().parent.parent
API = (ROOT / "slo_specs" / "api.yaml").read_text()
OPENSLO = (ROOT / "examples" / "openslo-search.yaml").read_text()
CONFIG = "prometheus_url: http://127.0.0.1:9\nspecs: [specs]\nstate_dir: state\n"

_register()
runner = CliRunner()


@pytest.fixture(params=["libyaml", "python"])
def parser(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Both YAML paths (libyaml and pure Python) must enforce the same limits."""
    monkeypatch.setattr(yaml_lines, "LIBYAML", request.param == "libyaml")
    return str(request.param)


def alias_chain(levels: int, prefix: str, leaf: str) -> str:
    """A "billion laughs": each anchor a list of ten aliases of the one before."""
    text = f"{prefix}0: &{prefix}0 [{', '.join([leaf] * 10)}]\n"
    for k in range(1, levels + 1):
        text += f"{prefix}{k}: &{prefix}{k} [{', '.join([f'*{prefix}{k - 1}'] * 10)}]\n"
    return text


SPEC_CASES = {
    # What validate accepted, then every cycle failed on (the latency bucket spelling).
    "threshold-400-nines": (
        API.replace("threshold: 500ms", "threshold: " + "9" * 400 + "ms"),
        (39, 20, "threshold: '99999"),
    ),
    "threshold-too-long": (
        API.replace("threshold: 500ms", "threshold: 2h"),
        (39, 20, "threshold 2h is out of range — 1ms ≤ threshold ≤ 1h"),
    ),
    # Crashed `run` with a traceback.
    "period-20-digits": (
        API.replace("period: 30d", "period: 99999999999999999999y", 1),
        (13, 13, "period: 36499999999999999999635d is longer than any duration"),
    ),
    "period-over-a-year": (
        API.replace("period: 30d", "period: 400d", 1),
        (13, 13, "period 400d is out of range — 1h ≤ period ≤ 365d"),
    ),
    "nul-character": (
        API.replace("owner: team-platform", "owner: team\x00platform"),
        (6, 12, "invalid YAML: control character U+0000 is not allowed"),
    ),
    "escape-character": (
        API.replace("owner: team-platform", "owner: team\x1bplatform"),
        (6, 12, "invalid YAML: control character U+001B is not allowed"),
    ),
    # RecursionError before.
    "nesting-3000-deep": (
        API + "x: " + "[" * 3000 + "]" * 3000 + "\n",
        (47, 68, "invalid YAML: nesting deeper than 64 levels"),
    ),
    "int-5000-digits": (
        API.replace("objective: 99.9", "objective: " + "1" * 5000),
        (12, 16, "invalid YAML: cannot read '1111"),
    ),
    "impossible-date": (
        API.replace("owner: team-platform", "owner: 2024-13-01"),
        (6, 8, "invalid YAML: cannot read '2024-13-01' as timestamp"),
    ),
    "objective-too-precise": (
        API.replace("objective: 99.9", "objective: 99.99999999"),
        (12, 16, "objective 99.99999999 has more than 6 decimal places"),
    ),
    "number-too-precise": (
        API.replace("objective: 95", 'objective: "95.0000000000000000000001"'),
        (30, 16, "objective: '95.0000000000000000000001' has more precision"),
    ),
    # 4.2 GB and MemoryError before: the message rendered the expanded value.
    "alias-bomb": (
        "apiVersion: slo-engine/v1\nservice: api\n"
        + alias_chain(8, "a", '"x"')
        + "slos:\n  - name: a\n    objective: *a8\n",
        (7, 45, "invalid YAML: aliases expand this document by over 100,000 nodes"),
    ),
    "recursive-alias": (
        API.replace("labels:\n  team: platform", "labels: &l\n  team: [*l]"),
        (8, 9, "invalid YAML: an alias refers to the collection it is inside"),
    ),
    # TypeError before: nothing after `objectives:`.
    "openslo-truncated-after-objectives": (
        OPENSLO[: OPENSLO.index("  objectives:")] + "  objectives:\n",
        (42, 1, "missing required key 'objectives'"),
    ),
}


@pytest.mark.parametrize("case", sorted(SPEC_CASES))
def test_malformed_spec_is_a_located_error(tmp_path: Path, parser: str, case: str) -> None:
    text, (line, column, message) = SPEC_CASES[case]
    path = tmp_path / "spec.yaml"
    path.write_text(text, encoding="utf-8")
    started = time.monotonic()
    result = load_specs([path])
    assert time.monotonic() - started < 5
    errors = [(e.line, e.column, e.text) for e in result.errors]
    assert any(
        (ln, col) == (line, column) and text.startswith(message) for ln, col, text in errors
    ), errors
    assert all(len(text) < 400 for *_, text in errors)  # no message renders a huge value


def test_validate_exits_1_without_a_traceback(tmp_path: Path) -> None:
    for case in ("threshold-400-nines", "nul-character", "nesting-3000-deep", "alias-bomb"):
        path = tmp_path / f"{case}.yaml"
        path.write_text(SPEC_CASES[case][0], encoding="utf-8")
        result = runner.invoke(app, ["validate", str(path)])
        assert result.exit_code == 1, (case, result.output)
        assert result.exception is None or isinstance(result.exception, SystemExit)
        assert f"{path}:" in result.stdout


def test_file_over_one_mebibyte_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "big.yaml"
    path.write_text(API + "# " + "x" * (1024 * 1024) + "\n")
    result = load_specs([path])
    assert [(e.line, e.column) for e in result.errors] == [(1, 1)]
    assert "over the limit of 1,048,576 (1 MiB) per file" in result.errors[0].text


def test_anchors_and_merge_keys_still_work(tmp_path: Path) -> None:
    text = API.replace("labels:\n  team: platform", "labels: &l\n  team: platform").replace(
        "    alerting:\n      runbook_url: https://runbooks.example.com/api/latency",
        "    alerting:\n      labels: *l\n      runbook_url: https://runbooks.example.com/api/latency",
    )
    path = tmp_path / "api.yaml"
    path.write_text(text)
    result = load_specs([path])
    assert result.errors == [] and len(result.slos) == 2


CONFIG_CASES = {
    # OverflowError in the scheduler before.
    "interval-400-digits": (
        CONFIG + "interval: " + "9" * 400 + "s\n",
        "config.yml:4:11: interval: '9999",
    ),
    "interval-too-long": (CONFIG + "interval: 2h\n", "config.yml:4:1: interval 2h is out of range"),
    "nul": (CONFIG.replace("state", "st\x00ate"), "config.yml:3:3: invalid YAML: control"),
    "deep": (
        CONFIG + "x: " + "{a: " * 3000 + "1" + "}" * 3000 + "\n",
        "config.yml:4:257: invalid YAML: nesting deeper than 64 levels",
    ),
    # 3.9 GB in 37 s before.
    "webhooks-alias-bomb": (
        CONFIG + alias_chain(7, "b", '"http://x/a"') + "webhooks: *b7\n",
        "config.yml:8:45: invalid YAML: aliases expand this document by over 100,000",
    ),
    "blind-after-too-many": (
        CONFIG + "blind_after_cycles: 1000000\n",
        "config.yml:4:1: blind_after_cycles 1000000 is out of range",
    ),
}


@pytest.mark.parametrize("case", sorted(CONFIG_CASES))
def test_malformed_config_is_a_located_error(tmp_path: Path, parser: str, case: str) -> None:
    text, expected = CONFIG_CASES[case]
    path = tmp_path / "config.yml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    problems = [p.replace(f"{tmp_path}/", "") for p in caught.value.problems]
    assert any(p.startswith(expected) for p in problems), problems
    assert all(len(p) < 400 for p in problems)
