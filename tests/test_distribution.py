"""The distributions PyPI would get: `python -m build` makes an sdist and a wheel from a clean
copy of the tree, `twine check` accepts both (metadata, README rendering), and the wheel's
metadata carries the version `slo-engine --version` prints."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from engine.telemetry import build_info

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("build") is None or importlib.util.find_spec("twine") is None,
    reason="needs build and twine (the test extra: pip install -e '.[test]')",
)


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    src = out / "src"
    shutil.copytree(
        ROOT,
        src,
        ignore=shutil.ignore_patterns(
            ".git",
            ".venv",
            "build",
            "dist",
            "*.egg-info",
            "__pycache__",
            "test-artifacts",
            ".pytest_cache",
            ".ruff_cache",
            ".state",
        ),
    )
    built = subprocess.run(
        [
            sys.executable,
            "-m",
            "build",
            "--sdist",
            "--wheel",
            "--outdir",
            str(out / "dist"),
            str(src),
        ],
        capture_output=True,
        text=True,
        timeout=900,
    )
    if built.returncode != 0 and "No matching distribution" in built.stdout + built.stderr:
        pytest.skip(f"cannot fetch the build backend: {(built.stdout + built.stderr)[-300:]}")
    assert built.returncode == 0, (built.stdout + built.stderr)[-3000:]
    return out / "dist"


def test_build_makes_an_sdist_and_a_wheel_twine_accepts(dist: Path) -> None:
    files = sorted(p.name for p in dist.iterdir())
    assert any(n.endswith(".tar.gz") for n in files) and any(n.endswith(".whl") for n in files)
    checked = subprocess.run(
        [sys.executable, "-m", "twine", "check", "--strict", *map(str, dist.iterdir())],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert checked.stdout.count("PASSED") == 2, checked.stdout


def test_the_wheel_metadata_names_the_version_the_cli_prints(dist: Path) -> None:
    (wheel,) = dist.glob("*.whl")
    with zipfile.ZipFile(wheel) as archive:
        (metadata,) = [n for n in archive.namelist() if n.endswith(".dist-info/METADATA")]
        text = archive.read(metadata).decode()
    assert f"Version: {build_info()['version']}" in text
    assert "Requires-Python: >=3.11" in text
    assert "Name: slo-engine" in text
