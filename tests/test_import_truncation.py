"""Issue #12, item 3: a spec file cut short anywhere — native, Sloth, OpenSLO or Pyrra — is
either still valid or a located error (`file:line:col: …`), never a traceback.

Every line boundary (where an editor's or a ConfigMap sync's partial write stops), every
point just after a `- ` or `: `, and a deterministic sample of byte offsets in between (a
cut inside a key, a value, a quote) go through the loader; every fourth line boundary also through `slo-engine validate`
in-process, which must exit 0 or 1 and print located errors only. A cut after `- ` once
crashed the OpenSLO (`timeWindow:`/`objectives:` items) and Sloth (`slos:` items) importers.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from engine.cli import _register, app
from engine.spec import yaml_lines
from engine.spec.loader import load_specs

ROOT = Path(__file__).resolve().parent.parent
FILES = {
    "native": ROOT / "slo_specs" / "api.yaml",
    "sloth": ROOT / "examples" / "sloth-checkout.yml",
    "openslo": ROOT / "examples" / "openslo-search.yaml",
    "pyrra": ROOT / "examples" / "pyrra-checkout.yaml",
}
LOCATED = re.compile(r"^(?P<file>.+?):(?P<line>\d+):(?P<col>\d+): \S")
# Bytes between sampled offsets: prime, so the cuts fall at every position within a line.
SAMPLE_STEP = 13

_register()
runner = CliRunner()


def line_boundaries(text: str) -> list[int]:
    """Offsets just after each newline, plus 0: the file cut after whole lines."""
    return [0, *(m.end() for m in re.finditer("\n", text))]


def cut_points(text: str) -> list[int]:
    """Line boundaries, every `SAMPLE_STEP`-th byte, and just after each `- ` and `: `:
    a list item or a value announced and then missing, the cuts that crashed importers."""
    markers = (m.end() for m in re.finditer(r"- |: ", text))
    return sorted({*line_boundaries(text), *range(1, len(text), SAMPLE_STEP), *markers})


def _check(path: Path, text: str, offset: int) -> bool:
    """Load `text` cut at `offset`; whether that is an error (each of them located)."""
    path.write_text(text[:offset], encoding="utf-8")
    result = load_specs([path])  # an exception here fails the test with its traceback
    for error in result.errors:
        shown = str(error)
        match = LOCATED.match(shown)
        assert match is not None, (offset, shown)
        assert match["file"] == str(path), (offset, shown)
        lines = max(1, text[:offset].count("\n") + 1)
        assert 1 <= int(match["line"]) <= lines, (offset, shown)
        assert len(shown) < 1000, (offset, shown)
    return bool(result.errors)


@pytest.mark.parametrize("kind", sorted(FILES))
def test_the_whole_file_is_valid(tmp_path: Path, kind: str) -> None:
    # The sweep below only means something if the untouched file loads.
    result = load_specs([FILES[kind]])
    assert result.errors == [] and result.slos, result.errors


@pytest.mark.parametrize("kind", sorted(FILES))
def test_every_cut_is_valid_or_a_located_error(tmp_path: Path, kind: str) -> None:
    text = FILES[kind].read_text(encoding="utf-8")
    path = tmp_path / FILES[kind].name
    located = 0
    for offset in cut_points(text):
        located += _check(path, text, offset)
    # Most cuts are errors (a missing objective, a broken mapping): the sweep saw them.
    assert located > len(cut_points(text)) // 2


@pytest.mark.parametrize("kind", sorted(FILES))
def test_line_cuts_with_the_pure_python_parser(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kind: str
) -> None:
    # Syntax errors are re-parsed in pure Python; without libyaml everything is.
    monkeypatch.setattr(yaml_lines, "LIBYAML", False)
    text = FILES[kind].read_text(encoding="utf-8")
    path = tmp_path / FILES[kind].name
    for offset in line_boundaries(text):
        _check(path, text, offset)


@pytest.mark.parametrize("kind", sorted(FILES))
def test_validate_exits_0_or_1_with_located_errors(tmp_path: Path, kind: str) -> None:
    text = FILES[kind].read_text(encoding="utf-8")
    path = tmp_path / FILES[kind].name
    codes = set()
    for offset in line_boundaries(text)[::4]:
        path.write_text(text[:offset], encoding="utf-8")
        result = runner.invoke(app, ["validate", str(path)])
        assert result.exception is None or isinstance(result.exception, SystemExit), (
            offset,
            result.exception,
        )
        assert result.exit_code in (0, 1), (offset, result.output)
        assert "Traceback" not in result.output
        codes.add(result.exit_code)
        if result.exit_code == 1:
            problems = [line for line in result.stdout.splitlines() if line.strip()]
            assert problems, (offset, result.output)
            assert all(LOCATED.match(p) for p in problems if p.startswith(str(path))), problems
            assert any(p.startswith(f"{path}:") for p in problems), problems
    assert 1 in codes


CRASHED_BEFORE = {
    # A list item announced and cut off: each importer converted `None` as a mapping.
    "openslo-timeWindow": (
        "openslo",
        "  timeWindow:\n    - ",
        "a timeWindow entry must be a mapping",
    ),
    "openslo-objectives": ("openslo", "  objectives:\n    - ", "an objective must be a mapping"),
    "sloth-slos": ("sloth", "slos:\n  - ", "an SLO must be a mapping"),
}


@pytest.mark.parametrize("case", sorted(CRASHED_BEFORE))
def test_a_cut_after_a_list_dash_is_located_at_the_item(tmp_path: Path, case: str) -> None:
    kind, marker, message = CRASHED_BEFORE[case]
    text = FILES[kind].read_text(encoding="utf-8")
    cut = text[: text.index(marker) + len(marker)]
    path = tmp_path / FILES[kind].name
    path.write_text(cut, encoding="utf-8")
    errors = load_specs([path]).errors
    # The item is the `- ` on the last line: its (empty) value is right after the dash.
    dash_line = cut.count("\n") + 1
    dash_column = len(marker.rsplit("\n", 1)[-1])
    assert any(
        (e.line, e.column) == (dash_line, dash_column) and e.text.startswith(message)
        for e in errors
    ), [str(e) for e in errors]
