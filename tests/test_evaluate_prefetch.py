"""The one-shot prefetch: the first half of the specs is asked while the rest loads, and the
answers are used only where the finished evaluation asks the very same question."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from engine.cli import _register, app
from engine.commands import evaluate_prefetch
from engine.commands.evaluate_prefetch import Prefetch, PrefetchedSource
from engine.demo.openmetrics import open_openmetrics
from engine.evaluation.instant import WindowCounts, counts_windows, evaluation_instant
from engine.evaluation.windows import recent_window_for
from engine.source.localprom import LocalPrometheus, backfill, skip_reason
from engine.spec.durations import Duration
from engine.spec.models import SLO, ServiceSpec

SCRAPE = Duration.parse("60s")
FINE = Duration.parse("2m30s")
AT = 1_800_000_000.0


def _slo(service: str, objective: float = 99.0) -> SLO:
    spec = ServiceSpec.model_validate(
        {
            "apiVersion": "slo-engine/v1",
            "service": service,
            "slos": [
                {
                    "name": "availability",
                    "objective": objective,
                    "sli": {
                        "events": {
                            "bad": f'sum(rate(req_total{{svc="{service}",code="500"}}[{{{{window}}}}]))',
                            "total": f'sum(rate(req_total{{svc="{service}"}}[{{{{window}}}}]))',
                        }
                    },
                }
            ],
        }
    )
    return spec.slo_records()[0]


class Counting:
    """Answers every SLO with its index; remembers who was asked."""

    def __init__(self, fail: bool = False) -> None:
        self.asked: list[list[str]] = []
        self.fail = fail

    def window_counts(
        self, slos: Sequence[SLO], windows: Sequence[Duration], at: float
    ) -> WindowCounts:
        self.asked.append([s.id for s in slos])
        if self.fail:
            raise RuntimeError("down")
        rows = np.array([[float(s.service.split("-")[1])] * len(windows) for s in slos])
        return WindowCounts(at, tuple(windows), rows, rows * 10, {})


def _windows(slos: Sequence[SLO]) -> tuple[Duration, ...]:
    return (*counts_windows(slos), recent_window_for(FINE))


def test_prefetched_rows_are_used_and_only_the_rest_is_asked() -> None:
    first = [_slo(f"svc-{i}") for i in range(3)]
    source = Counting()
    prefetch = Prefetch(source, first, AT, SCRAPE)
    final = [*first, _slo("svc-3")]
    at = evaluation_instant(AT, FINE)
    counts = PrefetchedSource(source, prefetch).window_counts(final, _windows(final), at)
    prefetch.close()
    assert sorted(map(sorted, source.asked)) == [
        ["svc-0/availability", "svc-1/availability", "svc-2/availability"],
        ["svc-3/availability"],
    ]
    np.testing.assert_array_equal(counts.bad[:, 0], [0, 1, 2, 3])
    np.testing.assert_array_equal(counts.total[:, 0], [0, 10, 20, 30])


def test_a_changed_slo_or_another_question_is_asked_again() -> None:
    first = [_slo("svc-0"), _slo("svc-1")]
    source = Counting()
    prefetch = Prefetch(source, first, AT, SCRAPE)
    at = evaluation_instant(AT, FINE)
    # The finished load says svc-1's objective is 99.9: not the SLO that was prefetched.
    changed = [first[0], _slo("svc-1", 99.9)]
    wrapped = PrefetchedSource(source, prefetch)
    wrapped.window_counts(changed, _windows(changed), at)
    assert source.asked[-1] == ["svc-1/availability"]
    # Another instant (a fine step later): nothing prefetched applies.
    wrapped.window_counts(first, _windows(first), at + FINE.seconds)
    assert source.asked[-1] == ["svc-0/availability", "svc-1/availability"]
    # Other windows: the same.
    wrapped.window_counts(first, _windows(first)[:-1], at)
    assert source.asked[-1] == ["svc-0/availability", "svc-1/availability"]
    prefetch.close()


def test_a_failed_prefetch_is_asked_the_usual_way() -> None:
    first = [_slo("svc-0")]
    failing = Counting(fail=True)
    prefetch = Prefetch(failing, first, AT, SCRAPE)
    answering = Counting()
    at = evaluation_instant(AT, FINE)
    counts = PrefetchedSource(answering, prefetch).window_counts(first, _windows(first), at)
    prefetch.close()
    assert answering.asked == [["svc-0/availability"]]
    assert counts.total[0, 0] == 0.0


def test_a_failed_coverage_prefetch_is_measured_the_usual_way(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def broken(*args: object) -> np.ndarray:
        raise RuntimeError("down")

    monkeypatch.setattr("engine.source.window_coverage.window_coverage", broken)
    first = [_slo("svc-0"), _slo("svc-1")]
    prefetch = Prefetch(Counting(), first, AT, SCRAPE)
    assert prefetch.asked is not None
    measured: list[list[str]] = []

    def measure(slos, windows, samples, fine, at):  # type: ignore[no-untyped-def]
        measured.append([s.id for s in slos])
        return np.full((len(slos), len(windows)), 0.5)

    final = [*first, _slo("svc-2")]
    a = prefetch.asked
    shares = prefetch.coverage(measure)(final, a.coverage_windows, a.samples, a.fine, a.at)
    prefetch.close()
    assert measured == [["svc-2/availability"], ["svc-0/availability", "svc-1/availability"]]
    assert (shares == 0.5).all()


def test_only_plain_slos_are_prefetched() -> None:
    plain = _slo("svc-0")
    grouped = ServiceSpec.model_validate(
        {
            "apiVersion": "slo-engine/v1",
            "service": "g",
            "group_by": ["route"],
            "slos": [
                {
                    "name": "availability",
                    "objective": 99,
                    "sli": {
                        "events": {
                            "bad": 'sum by (route) (rate(req_total{code="500"}[{{window}}]))',
                            "total": "sum by (route) (rate(req_total[{{window}}]))",
                        }
                    },
                }
            ],
        }
    ).slo_records()[0]
    prefetch = Prefetch(Counting(), [plain, grouped], AT, SCRAPE)
    prefetch.close()
    assert [s.id for s in prefetch.slos] == ["svc-0/availability"]


# ------------------------------------------------------------------ whole runs, real Prometheus

SERVICES = 70  # past PREFETCH_FROM_FILES (64): the prefetch runs
END = (int(time.time()) // 3600 - 1) * 3600


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    reason = skip_reason()
    if reason:
        pytest.skip(reason)
    work = tmp_path_factory.mktemp("prefetch")
    steps = np.arange(END - 2 * 86400, END + 1, 60, dtype=np.int64)
    rng = np.random.default_rng(3)
    with open_openmetrics(work / "data.om") as out:
        out.family("req", "counter")
        for i in range(SERVICES):
            ok = np.cumsum(rng.integers(10, 100, steps.size))
            errors = np.cumsum(rng.random(steps.size) < 0.05)
            out.series("req_total", {"svc": f"svc-{i}", "code": "200"}, steps, ok)
            out.series("req_total", {"svc": f"svc-{i}", "code": "500"}, steps, errors)
    specs = work / "specs"
    specs.mkdir()
    for i in range(SERVICES):
        slo = _slo(f"svc-{i}")
        bad, total = slo.sli.events.bad, slo.sli.events.total  # type: ignore[union-attr]
        (specs / f"svc-{i}.yaml").write_text(
            f"apiVersion: slo-engine/v1\nservice: svc-{i}\nslos:\n  - name: availability\n"
            f"    objective: 99\n    sli:\n      events:\n        bad: '{bad}'\n"
            f"        total: '{total}'\n"
        )
    with LocalPrometheus(backfill(work / "data.om", work / "tsdb")) as server:
        yield server.url, specs


def _evaluate(url: str, specs: Path) -> dict:
    _register()
    result = CliRunner().invoke(
        app,
        [
            "evaluate",
            "--specs",
            str(specs),
            "--prometheus-url",
            url,
            "--scrape-interval",
            "60s",
            "--at",
            str(END - 300),
            "--format",
            "json",
        ],
    )
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_a_run_with_the_prefetch_equals_one_without(
    fleet: tuple[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    url, specs = fleet
    used: list[int] = []
    original = Prefetch.__init__

    def spy(self: Prefetch, *args: object, **kwargs: object) -> None:
        original(self, *args, **kwargs)  # type: ignore[arg-type]
        used.append(len(self.slos))

    monkeypatch.setattr(Prefetch, "__init__", spy)
    with_prefetch = _evaluate(url, specs)
    assert used == [SERVICES // 2]
    monkeypatch.setattr(evaluate_prefetch, "PREFETCH_FROM_FILES", 10_000)
    without = _evaluate(url, specs)
    assert used == [SERVICES // 2]  # not run the second time
    assert with_prefetch == without
    assert len(without["slos"]) == SERVICES
    assert all(slo["status"] != "error" for slo in without["slos"])
    assert all(slo["coverage"]["1d"] == 1.0 for slo in without["slos"])
