"""Generated rules against the real promtool: syntax checks and the alert-timing unit tests
in tests/promtool/ (which prove detection, blip, slow-burn, recovery, no-data and
low-traffic behaviour on a 99.9 % / 30 d SLO)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from engine.generate.pipeline import generate, rule_file_text
from engine.spec.loader import load_specs

ROOT = Path(__file__).resolve().parents[1]
PROMTOOL_DIR = ROOT / "tests" / "promtool"

needs_promtool = pytest.mark.skipif(
    shutil.which("promtool") is None,
    reason="needs promtool — install with: sudo apt-get install -y prometheus",
)


SLOTH_EXAMPLE = ROOT / "examples" / "sloth-checkout.yml"


def generated_rule_files(spec_dir: Path) -> dict[str, str]:
    loaded = load_specs([spec_dir])
    assert loaded.ok, loaded.errors
    return {f.path: f.text for f in generate(loaded.slos) if f.path.endswith(".rules.yml")}


def unit_test_rule_files() -> dict[str, str]:
    """Every rule file the promtool unit tests read: tests/promtool/specs, and the Sloth
    example under its own name (its service, checkout, is taken by specs/checkout.yaml)."""
    loaded = load_specs([SLOTH_EXAMPLE])
    assert loaded.ok, loaded.errors
    sloth = rule_file_text("checkout", loaded.slos)
    return {**generated_rule_files(PROMTOOL_DIR / "specs"), "sloth-checkout.rules.yml": sloth}


def promtool(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["promtool", *map(str, args)], capture_output=True, text=True, timeout=300, check=False
    )


def test_unit_test_rule_files_are_the_current_generator_output() -> None:
    # The unit tests run against committed copies so `promtool test rules` works by hand;
    # this keeps those copies from drifting away from what the generator produces.
    for name, text in unit_test_rule_files().items():
        assert (PROMTOOL_DIR / name).read_text(encoding="utf-8") == text, (
            f"tests/promtool/{name} is stale — regenerate with: slo-engine generate "
            "--specs tests/promtool/specs --rules-dir tests/promtool --dashboards-dir <tmp> "
            "(sloth-checkout.rules.yml: from examples/sloth-checkout.yml, renamed)"
        )


@needs_promtool
@pytest.mark.prometheus
@pytest.mark.parametrize(
    "spec_dir", [ROOT / "slo_specs", PROMTOOL_DIR / "specs"], ids=lambda p: p.name
)
def test_promtool_check_rules_passes_on_every_generated_file(
    spec_dir: Path, tmp_path: Path
) -> None:
    files = generated_rule_files(spec_dir)
    assert files
    for name, text in files.items():
        (tmp_path / name).write_text(text, encoding="utf-8")
    result = promtool("check", "rules", *sorted(tmp_path.glob("*.rules.yml")))
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("SUCCESS") == len(files)


@needs_promtool
@pytest.mark.prometheus
def test_committed_rules_pass_promtool_check() -> None:
    files = sorted((ROOT / "alerts").glob("*.rules.yml"))
    assert files
    result = promtool("check", "rules", *files)
    assert result.returncode == 0, result.stdout + result.stderr


@needs_promtool
@pytest.mark.prometheus
@pytest.mark.parametrize("test_file", sorted(PROMTOOL_DIR.glob("*.test.yml")), ids=lambda p: p.name)
def test_promtool_unit_tests_prove_alert_timings(test_file: Path, tmp_path: Path) -> None:
    # Run against freshly generated rules, not just the committed copies.
    for name, text in unit_test_rule_files().items():
        (tmp_path / name).write_text(text, encoding="utf-8")
    shutil.copy(test_file, tmp_path / test_file.name)
    result = promtool("test", "rules", tmp_path / test_file.name)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


@needs_promtool
@pytest.mark.prometheus
def test_unit_tests_fail_when_the_rules_are_wrong(tmp_path: Path) -> None:
    # The same unit test against rules with the page threshold loosened to 2 % must fail:
    # the tests assert real timings, not merely that promtool runs.
    rules = generated_rule_files(PROMTOOL_DIR / "specs")["checkout.rules.yml"]
    assert rules.count("> 0.0144") == 2
    (tmp_path / "checkout.rules.yml").write_text(rules.replace("> 0.0144", "> 0.02"))
    test = (PROMTOOL_DIR / "burn_rate.test.yml").read_text()
    # Only the full-outage test: it is quick and pins the page at 6h02m.
    head, _ = test.split("  # --- a blip", 1)
    (tmp_path / "outage.test.yml").write_text(head)
    result = promtool("test", "rules", tmp_path / "outage.test.yml")
    assert result.returncode != 0
    assert "time: 6h2m" in result.stdout + result.stderr


@needs_promtool
@pytest.mark.prometheus
def test_period_test_fails_when_tiles_overlap(tmp_path: Path) -> None:
    # Tiles of 10m recorded every 5m overlap: the first tile reaches before the data and the
    # last hour's events are weighted differently. The period unit test, which adds the
    # tiles back up to the exact event counts, must notice.
    rules = generated_rule_files(PROMTOOL_DIR / "specs")["checkout.rules.yml"]
    # The total tile comes first (the bad tile's 0 fallback reads it): two raw [5m] reads.
    head, period = rules.split("  - record: slo:total_events:rate5m_every5m", 1)
    tiles, rest = period.split("  - record: slo:bad_events:rate30d", 1)
    assert tiles.count("[5m]") == 2
    mutated = "  - record: slo:total_events:rate5m_every5m".join(
        (head, tiles.replace("[5m]", "[10m]"))
    )
    (tmp_path / "checkout.rules.yml").write_text(
        mutated + "  - record: slo:bad_events:rate30d" + rest
    )
    shutil.copy(PROMTOOL_DIR / "period.test.yml", tmp_path / "period.test.yml")
    result = promtool("test", "rules", tmp_path / "period.test.yml")
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert 'expr: "sum_over_time(slo:bad_events:rate5m_every5m' in output
    assert (
        'exp: {service="checkout", slo="checkout/availability", team="payments", tier="critical"} 5.4E+03'
        in output
    )
