"""`slo-engine generate` and `--check`: committed output, drift detection, determinism."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from engine.cli import _register, app

ROOT = Path(__file__).resolve().parents[1]
runner = CliRunner()
_register()


def run(*args: str | Path) -> tuple[int, str]:
    result = runner.invoke(app, ["generate", *map(str, args)])
    return result.exit_code, result.output


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A copy of the specs and the committed output."""
    for name in ("slo_specs", "alerts", "dashboards"):
        shutil.copytree(ROOT / name, tmp_path / name)
    return tmp_path


def args(repo: Path) -> list[Path | str]:
    return [
        "--specs",
        repo / "slo_specs",
        "--rules-dir",
        repo / "alerts",
        "--dashboards-dir",
        repo / "dashboards",
    ]


def snapshot(repo: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(repo)): p.read_bytes()
        for d in ("alerts", "dashboards")
        for p in sorted((repo / d).rglob("*"))
        if p.is_file()
    }


def test_check_passes_on_the_committed_output() -> None:
    code, out = run(
        "--specs",
        ROOT / "slo_specs",
        "--rules-dir",
        ROOT / "alerts",
        "--dashboards-dir",
        ROOT / "dashboards",
        "--check",
    )
    assert code == 0, out
    assert "up to date" in out


def test_check_fails_and_lists_files_after_a_spec_change(repo: Path) -> None:
    spec = repo / "slo_specs" / "api.yaml"
    spec.write_text(spec.read_text().replace("objective: 99.9\n", "objective: 99.5\n", 1))
    before = snapshot(repo)
    code, out = run(*args(repo), "--check")
    assert code == 1
    changed = {line.split()[-1] for line in out.splitlines() if line.startswith("changed:")}
    assert changed == {
        str(repo / "alerts" / "api.rules.yml"),
        str(repo / "dashboards" / "slo-api.json"),
    }
    assert snapshot(repo) == before  # --check writes nothing
    # Writing brings it back in line.
    assert run(*args(repo))[0] == 0
    assert run(*args(repo), "--check")[0] == 0
    assert "> 0.072\n" in (repo / "alerts" / "api.rules.yml").read_text()  # 14.4 × 0.005


def test_missing_and_stale_files_are_reported_then_fixed(repo: Path) -> None:
    (repo / "dashboards" / "slo-database.json").unlink()
    (repo / "alerts" / "retired.rules.yml").write_text("groups: []\n")
    (repo / "alerts" / "notes.txt").write_text("not ours\n")
    code, out = run(*args(repo), "--check")
    assert code == 1
    assert f"missing: {repo / 'dashboards' / 'slo-database.json'}" in out
    assert f"extra:   {repo / 'alerts' / 'retired.rules.yml'}" in out
    assert "notes.txt" not in out
    code, out = run(*args(repo))
    assert code == 0, out
    assert not (repo / "alerts" / "retired.rules.yml").exists()
    assert (repo / "alerts" / "notes.txt").exists()
    assert run(*args(repo), "--check")[0] == 0


def test_two_runs_write_identical_bytes(tmp_path: Path) -> None:
    outputs = []
    for n in (1, 2):
        out = tmp_path / str(n)
        code, text = run(
            "--specs",
            ROOT / "slo_specs",
            "--rules-dir",
            out / "alerts",
            "--dashboards-dir",
            out / "dashboards",
        )
        assert code == 0, text
        outputs.append(snapshot(out))
    assert outputs[0] == outputs[1]
    assert outputs[0] == snapshot(ROOT)


def test_invalid_specs_exit_1_and_write_nothing(tmp_path: Path) -> None:
    (tmp_path / "bad.yaml").write_text("apiVersion: slo-engine/v1\nservice: x\nslos: []\n")
    code, out = run(
        "--specs",
        tmp_path / "bad.yaml",
        "--rules-dir",
        tmp_path / "a",
        "--dashboards-dir",
        tmp_path / "d",
    )
    assert code == 1
    assert "bad.yaml" in out
    assert not (tmp_path / "a").exists()
    code, _ = run("--specs", tmp_path / "nope")
    assert code == 2
