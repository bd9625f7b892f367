"""The report's plots read well: drawn at the pixel width they are shown at (no more points
than pixels, spikes kept), text of 9 pt or more, every axis labelled, threshold labels that
never overlap — and the page with them renders in headless Chromium."""

from __future__ import annotations

import base64
import io
import itertools
import re
import time
from pathlib import Path

import matplotlib.image as mpimg
import matplotlib.pyplot as plt
import numpy as np
import pytest
from harness.browser import MISSING, chromium_binary, screenshot
from matplotlib.lines import Line2D
from matplotlib.text import Text
from test_backtest_report import _result

from engine.backtest.plots import (
    PLOT_WIDTH_PX,
    THRESHOLD_FONT_PT,
    figure,
    plot_png,
    spread_labels,
    to_pixels,
)
from engine.backtest.report import render_report, write_report
from engine.backtest.traces import SLOTrace
from engine.spec.durations import Duration

ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"
D = Duration.parse
T0 = 1_704_067_200
MINUTES_30D = 43_200


def _trace(n: int = MINUTES_30D) -> SLOTrace:
    times = T0 + 60.0 * np.arange(n)
    ratio = np.full(n, 0.0004)
    ratio[n // 3 : n // 3 + 20] = 0.5  # a 20-minute outage: a spike in 43,200 points
    ratio[n // 2 : n // 2 + 300] = np.nan  # a gap without data
    burn = {w: ratio / 0.001 * k for w, k in ((D("1h"), 1.0), (D("6h"), 0.6), (D("1d"), 0.3))}
    return SLOTrace(
        times=times,
        error_ratio=ratio,
        error_ratio_window=D("5m"),
        burn=burn,
        # Two pairs of close thresholds (6 and 5, 3 and 2.8) and a shared one (14.4).
        thresholds=[
            ("page", D("1h"), 14.4),
            ("page", D("6h"), 6.0),
            ("ticket", D("1d"), 5.0),
            ("ticket", D("3d"), 3.0),
            ("ticket", D("6h"), 2.8),
            ("ticket", D("2h"), 14.4),
        ],
        budget_remaining=np.linspace(1.0, -0.5, n),
    )


def test_to_pixels_keeps_spikes_and_gaps() -> None:
    x = np.arange(MINUTES_30D, dtype=float)
    y = np.zeros(MINUTES_30D)
    y[12_345] = 1.0
    y[20_000:21_000] = np.nan
    xs, ys = to_pixels(x, y, 800)
    assert xs.size == ys.size <= 2 * 800
    assert np.nanmax(ys) == 1.0 and np.nanmin(ys) == 0.0
    assert np.isnan(ys).any()
    assert np.all(np.diff(xs) >= 0)
    short = np.arange(100.0)
    assert to_pixels(short, short, 800)[1] is short  # already fewer points than pixels


def test_spread_labels_keeps_order_and_gap() -> None:
    spread = spread_labels([100.0, 103.0, 40.0, 101.0], 12.0)
    assert spread[2] == 40.0 and spread[0] == 100.0
    ordered = sorted(spread)
    assert all(b - a >= 12.0 for a, b in itertools.pairwise(ordered))
    assert [round(v) for v in spread] == [100, 124, 40, 112]


def test_a_30_day_plot_is_quick_readable_and_labelled() -> None:
    trace = _trace()
    started = time.perf_counter()
    png = plot_png(trace, [(T0 + 86_400.0, T0 + 2 * 86_400.0, "#d62728")], [])
    assert time.perf_counter() - started < 2.5
    image = mpimg.imread(io.BytesIO(base64.b64decode(png)), format="png")
    assert image.shape[1] == PLOT_WIDTH_PX  # shown 1:1, never scaled

    fig = figure(trace, [], [])
    try:
        fig.canvas.draw()
        renderer = fig.canvas.get_renderer()
        ratio_ax, burn_ax, budget_ax = fig.axes
        for ax in fig.axes:
            assert ax.get_ylabel().strip()
            width = ax.get_window_extent(renderer).width
            for line in ax.get_lines():
                assert len(line.get_xdata()) <= 2 * width + 2, "more points than pixels"
        assert budget_ax.get_xlabel() == "time (UTC)"
        assert "log" in burn_ax.get_ylabel()  # the symlog axis says so
        texts = [
            t
            for t in fig.findobj(Text)
            if t.get_visible() and t.get_text().strip() and t.get_figure() is not None
        ]
        too_small = {t.get_text(): t.get_fontsize() for t in texts if t.get_fontsize() < 9}
        assert not too_small, too_small
        thresholds = [t for t in burn_ax.texts if "×" in t.get_text()]
        assert len(thresholds) == 6
        assert all(t.get_fontsize() >= THRESHOLD_FONT_PT for t in thresholds)
        boxes = [t.get_window_extent(renderer) for t in thresholds]
        overlapping = [
            (a.get_text(), b.get_text())
            for (a, box_a), (b, box_b) in itertools.combinations(
                zip(thresholds, boxes, strict=True), 2
            )
            if box_a.overlaps(box_b)
        ]
        assert not overlapping, overlapping
        # The spike survived the reduction to pixels.
        (ratio_line,) = [line for line in ratio_ax.get_lines() if isinstance(line, Line2D)]
        assert np.nanmax(ratio_line.get_ydata()) == 0.5
    finally:
        plt.close(fig)


def test_report_reports_its_progress_per_plot() -> None:
    calls: list[tuple[str, int, int]] = []
    render_report(_result(), progress=lambda *call: calls.append(call))
    assert calls == [("report", 0, 2), ("report", 1, 2), ("report", 2, 2)]


@pytest.mark.browser
def test_plots_render_one_to_one_in_headless_chromium(tmp_path: Path) -> None:
    if chromium_binary() is None:
        pytest.skip(MISSING)
    report = write_report(_result(), tmp_path / "report.html")
    html = report.read_text()
    assert re.search(rf"img\.plot {{[^}}]*width: {PLOT_WIDTH_PX}px", html)
    ARTIFACTS.mkdir(exist_ok=True)
    shot = screenshot(
        report.resolve().as_uri(), ARTIFACTS / "backtest-report-plots.png", (1280, 2400)
    )
    pixels = mpimg.imread(shot)
    assert pixels.shape[:2] == (2400, 1280)
    # The first plot (below the tables, from about y=700): dark axes and text, and the
    # threshold labels' colours in the right margin of the image (x ≈ 960-1100 px).
    plot = pixels[700:1500, :, :3]
    assert (plot.mean(axis=2) < 0.3).mean() > 0.005
    margin = plot[:, 960:1120]
    reddish = (margin[..., 0] > 0.6) & (margin[..., 1] < 0.4) & (margin[..., 2] < 0.4)
    assert reddish.sum() > 50, "the page thresholds' labels are in the right margin"
