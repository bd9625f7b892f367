"""The wheel users install holds the engine and what `make demo` needs — never the test
harness (tests/harness) or a test module."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    # Build from a copy so the build leaves no build/ or *.egg-info in the checkout.
    src = out / "src"
    shutil.copytree(
        ROOT,
        src,
        ignore=shutil.ignore_patterns(
            ".git", ".venv", "build", "*.egg-info", "__pycache__", "test-artifacts", ".pytest_cache"
        ),
    )
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(out), str(src)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    if result.returncode != 0 and "No matching distribution" in result.stderr:
        pytest.skip(f"cannot fetch the build backend: {result.stderr.strip()[-300:]}")
    assert result.returncode == 0, result.stderr
    (built,) = out.glob("slo_engine-*.whl")
    return built


def test_the_wheel_holds_no_test_harness(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    top = {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}
    assert top == {"engine"}, top
    test_like = [
        n
        for n in names
        if "/testing/" in n
        or "/harness/" in n
        or n.rsplit("/", 1)[-1].startswith(("test_", "conftest"))
        or n.endswith(("/testing.py", "/harness.py"))
    ]
    assert not test_like, test_like
    # What users run is there: the CLI, its templates, and what `make demo` needs.
    for needed in (
        "engine/cli.py",
        "engine/commands/evaluate.py",
        "engine/incidents/templates/title.txt.j2",
        "engine/api/templates/status.html.j2",
        "engine/demo/simulator.py",
        "engine/source/localprom.py",
    ):
        assert needed in names, needed
