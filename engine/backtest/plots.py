"""The backtest report's plots: one PNG per SLO — error ratio, burn rates against the
policy's thresholds, error budget left — drawn with matplotlib (Agg backend).

Each plot is drawn for the width it is shown at (`PLOT_WIDTH_PX`, one image pixel per CSS
pixel): every series is first reduced to a minimum and a maximum per pixel column, so a
spike one step wide still shows and no plot draws more points than it has pixels. Text is
at least 9 pt, every axis says what it measures (the burn-rate axis also that it turns
logarithmic above 1×), and the threshold labels sit in the right margin, pushed apart
where two thresholds are close.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Sequence
from typing import Any

import matplotlib

matplotlib.use("Agg")  # no display: render to memory only

import matplotlib.dates as mdates
import matplotlib.pyplot as plt
import matplotlib.ticker as mticker
import numpy as np

from engine.backtest.traces import SLOTrace

# The image's width in pixels, shown 1:1 (the page's body is wider at 1280 px); the axes
# take the part between the fixed margins below, the right one holding threshold labels.
PLOT_WIDTH_PX = 1100
PLOT_HEIGHT_PX = 760
DPI = 100
_MARGINS = {"left": 0.11, "right": 0.855, "top": 0.975, "bottom": 0.09, "hspace": 0.14}
_STYLE = {
    "font.size": 10,
    "axes.labelsize": 10,
    "xtick.labelsize": 9,
    "ytick.labelsize": 9,
    "legend.fontsize": 9,
}
THRESHOLD_FONT_PT = 9

COLORS = {
    "page": "#d62728",
    "ticket": "#ff7f0e",
    "anomaly": "#9467bd",
    "held": "#7f7f7f",
    "incident": "#1f77b4",
}


def _dates(values: np.ndarray) -> np.ndarray:
    return np.asarray(values, dtype="datetime64[s]").astype("datetime64[ms]")


def _shade(ax: Any, intervals: Sequence[tuple[float, float, str]], alpha: float = 0.18) -> None:
    for start, end, color in intervals:
        ax.axvspan(
            _dates(np.array([start]))[0], _dates(np.array([end]))[0], color=color, alpha=alpha, lw=0
        )


def to_pixels(x: np.ndarray, y: np.ndarray, columns: int) -> tuple[np.ndarray, np.ndarray]:
    """`y` over `x` reduced to its minimum and maximum in each of `columns` equal spans of
    the points (both kept, in that order), so a line drawn from them covers exactly the
    pixels the full series would; a span without data stays a gap (NaN)."""
    n = y.size
    if n <= 2 * columns:
        return x, y
    bucket = -(-n // columns)
    pad = (-n) % bucket
    shaped = np.concatenate([y, np.full(pad, np.nan)]).reshape(-1, bucket)
    xs = np.concatenate([x, np.repeat(x[-1:], pad)]).reshape(-1, bucket)
    empty = np.isnan(shaped).all(axis=1)
    filled = np.where(np.isnan(shaped), np.inf, shaped)
    low = np.where(empty, np.nan, filled.min(axis=1))
    high = np.where(empty, np.nan, np.where(np.isnan(shaped), -np.inf, shaped).max(axis=1))
    return np.repeat(xs[:, 0], 2), np.column_stack([low, high]).ravel()


def _axes_pixels() -> int:
    return round(PLOT_WIDTH_PX * (_MARGINS["right"] - _MARGINS["left"]))


def _line(ax: Any, times: np.ndarray, values: np.ndarray, **style: Any) -> None:
    x, y = to_pixels(times, np.asarray(values, dtype=float), _axes_pixels())
    ax.plot(_dates(x), y, **style)


def spread_labels(positions: Sequence[float], gap: float) -> list[float]:
    """`positions` (display y, any order) moved apart to at least `gap` each, upwards,
    keeping their order: labels of close thresholds stack instead of overlapping."""
    order = sorted(range(len(positions)), key=lambda i: positions[i])
    out = list(positions)
    floor = -np.inf
    for i in order:
        out[i] = max(positions[i], floor + gap)
        floor = out[i]
    return out


def _threshold_labels(ax: Any, thresholds: Sequence[tuple[str, Any, float]]) -> None:
    """One label per threshold line in the right margin, at its height, never overlapping
    (the layout is fixed, so data → pixel positions are final here)."""
    labels: dict[float, list[tuple[str, str]]] = {}
    for severity, window, factor in thresholds:
        labels.setdefault(factor, []).append((severity, f"{severity} {window} {factor:g}×"))
    factors = sorted(labels)
    to_display = ax.transData.transform
    heights = [to_display((0.0, f))[1] for f in factors]
    gap = THRESHOLD_FONT_PT * DPI / 72 * 1.25
    for factor, y in zip(factors, spread_labels(heights, gap), strict=True):
        for k, (severity, text) in enumerate(labels[factor]):
            _, y_axes = ax.transAxes.inverted().transform((0.0, y + k * gap))
            ax.text(
                1.01,
                y_axes,
                text,
                transform=ax.transAxes,
                fontsize=THRESHOLD_FONT_PT,
                color=COLORS[severity],
                va="center",
                ha="left",
                clip_on=False,
            )


# Ratios as percentages with 3 significant digits: 60%, 0.025%, -250%.
_PERCENT = mticker.FuncFormatter(lambda value, _: f"{value * 100:.3g}%")


def _headroom(values: np.ndarray) -> float:
    """A top for an axis from 0: 15% above the highest value (1e-6 when there is none)."""
    finite = np.asarray(values, dtype=float)
    finite = finite[np.isfinite(finite)]
    top = float(finite.max()) if finite.size else 0.0
    return top * 1.15 if top > 0 else 1e-6


def _burn_axis(ax: Any, trace: SLOTrace) -> None:
    for window, values in trace.burn.items():
        _line(ax, trace.times, values, lw=1.0, label=f"burn {window}")
    for severity, _window, factor in trace.thresholds:
        ax.axhline(factor, color=COLORS[severity], ls="--", lw=0.8)
    finite = [v for v in trace.burn.values() if np.isfinite(v).any()]
    top = max([np.nanmax(v) for v in finite] + [f for _, _, f in trace.thresholds] + [1.0])
    if top > 50:
        ax.set_yscale("symlog", linthresh=1.0)
        ax.set_ylabel("burn rate (×)\nlog scale above 1")
    else:
        ax.set_ylabel("burn rate (×)")
    ax.set_ylim(bottom=0.0)
    ax.legend(loc="upper left", ncol=4, framealpha=0.85)
    _threshold_labels(ax, trace.thresholds)


def plot_png(
    trace: SLOTrace, shaded: list[tuple[float, float, str]], incidents: list[tuple[float, float]]
) -> str:
    """The PNG of `figure(...)`, base64 (for a data URI)."""
    with plt.rc_context(_STYLE):
        fig = figure(trace, shaded, incidents)
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=DPI)
        plt.close(fig)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def figure(
    trace: SLOTrace, shaded: list[tuple[float, float, str]], incidents: list[tuple[float, float]]
) -> Any:
    """Error ratio, burn rates against their thresholds, and budget left, over time."""
    with plt.rc_context(_STYLE):
        fig, axes = plt.subplots(
            3, 1, figsize=(PLOT_WIDTH_PX / DPI, PLOT_HEIGHT_PX / DPI), sharex=True, dpi=DPI
        )
        fig.subplots_adjust(**_MARGINS)
        ratio_ax, burn_ax, budget_ax = axes
        _line(ratio_ax, trace.times, trace.error_ratio, color="#333", lw=1.0)
        ratio_ax.set_ylabel(f"error ratio\n({trace.error_ratio_window})")
        # From 0 to a little above the highest point, in percent: a flat series no longer
        # gets ticks like 0.000300000000000020 or a line hidden under the frame.
        ratio_ax.set_ylim(0.0, _headroom(trace.error_ratio))
        ratio_ax.yaxis.set_major_formatter(_PERCENT)
        _burn_axis(burn_ax, trace)
        _line(budget_ax, trace.times, trace.budget_remaining, color="#2ca02c", lw=1.2)
        budget_ax.axhline(0.0, color="#b00", lw=0.8)
        budget_ax.set_ylabel("error budget\nremaining")
        budget_ax.yaxis.set_major_formatter(_PERCENT)
        for ax in axes:
            _shade(ax, shaded)
            for start, end in incidents:
                ax.axvspan(
                    _dates(np.array([start]))[0],
                    _dates(np.array([end]))[0],
                    ymin=0.96,
                    ymax=1.0,
                    color=COLORS["incident"],
                    alpha=0.9,
                    lw=0,
                )
            ax.grid(True, alpha=0.3)
            ax.tick_params(labelsize=_STYLE["xtick.labelsize"])  # whatever rc is at draw
            # One column for the y labels, whatever the width of the tick labels.
            ax.yaxis.set_label_coords(-0.085, 0.5)
        budget_ax.xaxis.set_major_formatter(mdates.DateFormatter("%m-%d %H:%M"))
        budget_ax.set_xlabel("time (UTC)")
        for label in budget_ax.get_xticklabels():
            label.set_rotation(20)
            label.set_horizontalalignment("right")
    return fig
