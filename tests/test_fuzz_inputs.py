"""Fuzzing (issue #12, item 7): mutations of valid spec files (native, Sloth, OpenSLO,
Pyrra) and of a valid daemon config — truncation, type swaps, huge and tiny numbers,
unicode, nesting, aliases — must each give success or located errors: never a traceback,
never more than 5 s or 500 MB a case. Deterministic (`derandomize=True`) and bounded
(`max_examples`), so it costs seconds in `make test`."""

from __future__ import annotations

import resource
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.daemon.config import ConfigError, load_config
from engine.spec import yaml_lines
from engine.spec.loader import load_specs

ROOT = Path(__file__).resolve().parent.parent
SEEDS = {
    "native": (ROOT / "slo_specs" / "api.yaml").read_text(),
    "sloth": (ROOT / "examples" / "sloth-checkout.yml").read_text(),
    "openslo": (ROOT / "examples" / "openslo-search.yaml").read_text(),
    "pyrra": (ROOT / "examples" / "pyrra-checkout.yaml").read_text(),
}
CONFIG = """\
prometheus_url: http://127.0.0.1:9090
specs: [specs]
state_dir: state
interval: 30s
scrape_interval: 15s
query_timeout: 10s
blind_after_cycles: 3
batch_size: 100
webhooks: [http://127.0.0.1:9/hook]
source_breaker: {failures: 3, cooldown: 30s}
incidents: {resolve_after: 5m}
"""
FUZZ = settings(
    max_examples=150,
    deadline=5000,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
MAX_CASE_SECONDS = 5.0
MAX_GROWTH_KIB = 500 * 1024

REPLACEMENTS = st.one_of(
    st.sampled_from(
        [
            "",
            "~",
            "[]",
            "{}",
            "true",
            "-1",
            "0",
            "1e400",
            "-1e-400",
            ".nan",
            ".inf",
            "9" * 400,
            "0." + "9" * 400,
            "99999999999999999999y",
            "1" * 5000,
            "2024-13-01",
            '"\\x00"',
            "&a [*a]",
            "[" * 500 + "]" * 500,
            "{a: " * 200 + "1" + "}" * 200,
            "*undefined",
            "! x",
            "{{window}}",
            "'",
            '"',
        ]
    ),
    st.text(max_size=40),
    st.integers(min_value=-(10**30), max_value=10**30).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
)


@st.composite
def mutated(draw: st.DrawFn, seed: str) -> str:
    """`seed` with one to three mutations."""
    text = seed
    for _ in range(draw(st.integers(1, 3))):
        lines = text.splitlines(keepends=True) or [""]
        kind = draw(st.sampled_from(["truncate", "value", "line", "alias", "unicode"]))
        i = draw(st.integers(0, len(lines) - 1))
        if kind == "truncate":
            text = text[: draw(st.integers(0, len(text)))]
        elif kind == "value":
            key, sep, _ = lines[i].partition(": ")
            lines[i] = f"{key}{sep or ': '}{draw(REPLACEMENTS)}\n"
            text = "".join(lines)
        elif kind == "line":
            lines.insert(i, draw(st.sampled_from(["  x: 1\n", "- a\n", "\t\n", "---\n", "  \n"])))
            text = "".join(lines)
        elif kind == "alias":
            bomb = "z0: &z0 [a, a, a, a, a, a, a, a, a, a]\n" + "".join(
                f"z{k}: &z{k} [{', '.join([f'*z{k - 1}'] * 10)}]\n" for k in range(1, 9)
            )
            text = bomb + text + "extra: *z8\n"
        else:
            at = draw(st.integers(0, len(text)))
            text = text[:at] + draw(st.text(min_size=1, max_size=5)) + text[at:]
    return text


def _run_bounded(call: object) -> None:
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.monotonic()
    call()  # type: ignore[operator]
    assert time.monotonic() - started < MAX_CASE_SECONDS
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < MAX_GROWTH_KIB


@pytest.fixture(params=[True, False], ids=["libyaml", "python"])
def libyaml(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(yaml_lines, "LIBYAML", request.param)


@pytest.mark.parametrize("fmt", sorted(SEEDS))
def test_mutated_specs_give_located_errors(
    fmt: str, libyaml: None, tmp_path_factory: pytest.TempPathFactory
) -> None:
    folder = tmp_path_factory.mktemp(f"fuzz-{fmt}")
    path = folder / "spec.yaml"

    @FUZZ
    @given(mutated(SEEDS[fmt]))
    def case(text: str) -> None:
        path.write_text(text, encoding="utf-8", errors="surrogatepass")

        def check() -> None:
            result = load_specs([path])  # any exception fails the case
            for error in [*result.errors, *result.warnings]:
                assert error.file == str(path) and error.line >= 1 and error.column >= 1
                assert len(error.text) < 1000, error.text

        _run_bounded(check)

    case()


def test_mutated_configs_give_located_errors(
    libyaml: None, tmp_path_factory: pytest.TempPathFactory
) -> None:
    folder = tmp_path_factory.mktemp("fuzz-config")
    path = folder / "config.yml"

    @FUZZ
    @given(mutated(CONFIG))
    def case(text: str) -> None:
        path.write_text(text, encoding="utf-8", errors="surrogatepass")

        def check() -> None:
            try:
                load_config(path)
            except ConfigError as exc:
                assert exc.problems
                for problem in exc.problems:
                    assert problem.startswith((str(path), "--")) or ":" in problem
                    assert len(problem) < 1000, problem

        _run_bounded(check)

    case()
