"""The one-shot path sends its batches longest range first (engine.source.window_counts):
Prometheus' cost follows the samples in a range, so the 30d read must not start last."""

from __future__ import annotations

from engine.source.query_plan import Part
from engine.source.window_counts import longest_first


def _batch(*exprs: str) -> list[Part]:
    return [Part(expr=e, atoms=(i,)) for i, e in enumerate(exprs)]


def test_batches_go_longest_range_first() -> None:
    five = _batch("sum(rate(x[5m]))")
    month = _batch("sum(rate(x[30d]))")
    day = _batch("sum(rate(x[2m30s]))", "sum(rate(x[23h59m59s999ms]))")
    covered = _batch("count_over_time((\nsum(rate(x[2m30s]))\n)[5h59m59s999ms:5m])")
    assert longest_first([five, day, covered, month]) == [month, day, covered, five]


def test_bracketed_label_values_weigh_nothing() -> None:
    """Text in brackets that is no duration (a label value) neither breaks nor reorders."""
    odd = _batch('sum(rate(x{path="/a[5yyyy]"}[1m]))')
    hour = _batch("sum(rate(x[1h]))")
    assert longest_first([odd, hour]) == [hour, odd]
