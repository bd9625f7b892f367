"""Long windows read as a tile beyond a shorter window: the plan and the sums (pure)."""

from __future__ import annotations

import numpy as np
import pytest

from engine.source.query_plan import plan_queries
from engine.source.window_counts import _SENTINEL, _tile_renamer
from engine.source.window_tiles import tile
from engine.spec.durations import Duration


def _d(text: str) -> Duration:
    return Duration.parse(text)


WINDOWS = (_d("5m"), _d("1h"), _d("1d"), _d("30d"))


def _base(func: str = "rate"):
    expr = f'sum({func}(m{{job="a"}}[{_SENTINEL}]))'
    return plan_queries([(expr, expr)])


def test_only_windows_of_a_week_or_more_are_tiled_onto_the_longest_day_or_more() -> None:
    tiles = tile(_base(), WINDOWS, _tile_renamer)
    assert tiles is not None
    assert tiles.inner == (None, None, None, 2)  # 30d = [29d] offset 1d + 1d
    assert list(tiles.plan.atoms) == [
        'sum(rate(m{job="a"}[5m]))',
        'sum(rate(m{job="a"}[1h]))',
        'sum(rate(m{job="a"}[1d]))',
        'sum(rate(m{job="a"}[29d] offset 1d))',
    ]
    assert tiles.lengths == (300.0, 3600.0, 86400.0, 29 * 86400.0)


def test_nothing_to_tile() -> None:
    assert tile(_base(), (_d("5m"), _d("1h"), _d("1d")), _tile_renamer) is None
    assert tile(_base(), (_d("5m"), _d("30d")), _tile_renamer) is None  # no day to tile onto
    opaque = plan_queries([(f"max(rate(m[{_SENTINEL}]))",) * 2])
    assert tile(opaque, WINDOWS, _tile_renamer) is None
    assert tile(_base("max_over_time"), WINDOWS, _tile_renamer) is None


def test_a_one_millisecond_shorter_range_stays_shorter_in_the_tile() -> None:
    expr = f'sum(count_over_time(up{{job="db"}}[{Duration(_SENTINEL.ms - 1)}]))'
    tiles = tile(plan_queries([(expr, expr)]), WINDOWS, _tile_renamer)
    assert tiles is not None
    assert tiles.plan.atoms[3] == 'sum(count_over_time(up{job="db"}[28d23h59m59s999ms] offset 1d))'


def test_rates_add_as_increases_over_the_window() -> None:
    tiles = tile(_base(), WINDOWS, _tile_renamer)
    assert tiles is not None
    read = np.array([[2.0], [1.0], [0.5], [0.25]])  # per-second rates of each read
    rates = tiles.window_rates(read, WINDOWS)[:, 0]
    day, rest = 0.5 * 86400, 0.25 * 29 * 86400
    np.testing.assert_allclose(rates, [2.0, 1.0, 0.5, (day + rest) / (30 * 86400)])


def test_counts_add_as_they_are() -> None:
    tiles = tile(_base("count_over_time"), WINDOWS, _tile_renamer)
    assert tiles is not None
    rates = tiles.window_rates(np.array([[5.0], [60.0], [1440.0], [1000.0]]), WINDOWS)[:, 0]
    np.testing.assert_array_equal(rates, [5.0, 60.0, 1440.0, 2440.0])


@pytest.mark.parametrize(
    ("day", "rest", "expected"),
    [
        (np.nan, 0.25, 0.25 * 29 / 30),  # data only before the last day
        (0.5, np.nan, 0.5 / 30),  # a young series: the day is all there is
        (np.nan, np.nan, np.nan),  # no data in either: no data, never 0
    ],
)
def test_a_window_has_data_when_either_read_has(day: float, rest: float, expected: float) -> None:
    tiles = tile(_base(), WINDOWS, _tile_renamer)
    assert tiles is not None
    rates = tiles.window_rates(np.array([[1.0], [1.0], [day], [rest]]), WINDOWS)[:, 0]
    np.testing.assert_allclose(rates[3], expected)
    np.testing.assert_array_equal(rates[2], day)


def test_a_failed_read_fails_every_window_of_its_atom() -> None:
    expr = f'sum(rate(m{{job="a"}}[{_SENTINEL}]))'
    other = f'sum(rate(n{{job="a"}}[{_SENTINEL}]))'
    tiles = tile(plan_queries([(expr, other)]), WINDOWS, _tile_renamer)
    assert tiles is not None
    errors = tiles.window_errors({3 * 2 + 1: "boom"}, len(WINDOWS))  # atom 1's 30d read
    assert errors == {w * 2 + 1: "boom" for w in range(4)}
