"""The longest windows' counts read as a tile beyond a shorter window, so Prometheus does
not decode the shorter window's samples twice.

Asked one range per window, the 1d and 30d ranges both end at `at`: Prometheus decodes the
newest day twice, and the 30d query is the largest of a one-shot run. A window of at least
`TILED_FROM` (7d) is read instead as the tile (at − W, at − V] beyond the longest window V
≥ `TILE_ONTO` (1d) it contains, `[W − V] offset V`, and its count is the tile's plus V's.
With two days of history behind a 30d window that halves its query (bench/bench_peers.py).

Only long windows are tiled because an `increase` loses what the counter did between the
last sample before a tile edge and the first after it (each side extrapolates its own
slope to the edge). Over the whole window that is one more edge than a single range has:
at most one scrape interval's events, 1/10,000 of a 7d window at 60 s scrapes, where
tiling a 5m window at 2m30s would have dropped a sparse error counter's only increment.

Tiles are summed per atom (the planner's `sum(FUNC(metric{…}[w]))`) before atoms are
combined into bad and total, so a window has data exactly when its tile or its inner window
has, and a derived SLI's missing good series reads as over one range. A `rate` tile adds as
an increase (rate × tile length); `increase`, `count_over_time` and `sum_over_time` add as
they are. Only plans made entirely of parsed atoms are tiled: an opaque expression may carry
its own `offset` or `@`, so such a plan keeps one range per window.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from engine.source.query_plan import QueryPlan
from engine.spec.durations import Duration

# Atom functions whose values over disjoint ranges add up (rate after × length).
_TILEABLE = frozenset({"rate", "increase", "count_over_time", "sum_over_time"})
TILED_FROM = Duration.parse("7d")
TILE_ONTO = Duration.parse("1d")

Renamer = Callable[[str], str]


@dataclass(frozen=True)
class Tiles:
    """The request plan of a tiled read and how to turn its answers back into windows."""

    plan: QueryPlan  # base atoms × windows: window w's read of base atom a is w × A + a
    inner: tuple[int | None, ...]  # window w = its read + window inner[w] (None: read whole)
    lengths: tuple[float, ...]  # seconds each window's read covers
    per_second: np.ndarray  # bool[A]: the atom is a rate (reads add as rate × length)

    def window_rates(self, read: np.ndarray, windows: Sequence[Duration]) -> np.ndarray:
        """float64[W × A, 1] in the per-window plan's layout (window w's copy of base atom
        a at w × A + a): what one `[W]` range per window would have answered — the rate
        over the window for rates, the sum for the rest; NaN where nothing had data."""
        n_atoms = self.per_second.size
        values = read[:, 0].reshape(len(windows), n_atoms)
        lengths = np.array(self.lengths)[:, None]
        amounts = np.where(self.per_second, values * lengths, values)  # [W, A]
        # Shortest first, so a window's inner window is summed before it.
        for w in sorted(range(len(windows)), key=lambda i: windows[i]):
            inner = self.inner[w]
            if inner is not None:
                both = np.vstack([amounts[w], amounts[inner]])
                summed = np.nansum(both, axis=0)
                amounts[w] = np.where(np.isnan(both).all(axis=0), np.nan, summed)
        seconds = np.array([w.seconds for w in windows])[:, None]
        return np.where(self.per_second, amounts / seconds, amounts).reshape(-1, 1)

    def window_errors(self, errors: dict[int, str], n_windows: int) -> dict[int, str]:
        """Failed reads as the per-window plan's atoms: a failed read fails every window
        of that atom (a tiled window needs two reads; keep the SLO's windows consistent)."""
        n_atoms = self.per_second.size
        out: dict[int, str] = {}
        for atom, message in sorted(errors.items()):
            base = atom % n_atoms
            for w in range(n_windows):
                out.setdefault(w * n_atoms + base, message)
        return out


def tile(
    base: QueryPlan,
    windows: Sequence[Duration],
    renamer: Callable[[Duration, Duration | None], Renamer],
) -> Tiles | None:
    """The request plan for `base` (planned at a sentinel range) over `windows` with the
    long windows tiled, or None when nothing is tiled (no window long enough, an opaque
    atom, a function whose values do not add up). `renamer(length, offset)` rewrites the
    sentinel range as `[length] offset <offset>`."""
    inner: list[int | None] = []
    for window in windows:
        shorter = [i for i, v in enumerate(windows) if TILE_ONTO <= v < window]
        long_enough = window >= TILED_FROM and shorter
        inner.append(max(shorter, key=lambda i: windows[i]) if long_enough else None)
    if all(i is None for i in inner) or len(base.selectors) != len(base.atoms):
        return None
    if any(s.func not in _TILEABLE for s in base.selectors.values()):
        return None
    n_atoms = len(base.atoms)
    reads = [
        (w, Duration(0)) if i is None else (Duration(w.ms - windows[i].ms), windows[i])
        for w, i in zip(windows, inner, strict=True)
    ]
    renames = [renamer(length, offset if offset.ms else None) for length, offset in reads]
    atoms = tuple(rename(a) for rename in renames for a in base.atoms)
    parts = tuple(
        p.moved(rename(p.expr), w * n_atoms) for p in base.parts for w, rename in enumerate(renames)
    )
    per_second = np.array([base.selectors[a].func == "rate" for a in range(n_atoms)])
    plan = QueryPlan(atoms, parts, base.bad, base.total)
    return Tiles(plan, tuple(inner), tuple(length.seconds for length, _ in reads), per_second)
