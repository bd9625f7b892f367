"""The daemon's `slo_engine_anomaly_*` gauges, produced at scrape time from the latest
anomaly states (like the SLO gauges: a series removed by a reload disappears at once).

Per anomaly series (labels `slo`, `service`, `signal`; one series per SLO and signal, so
cardinality is bounded by the specs): the robust score, the profile in use, and what the
service dashboards' "observed vs expected band" panels draw — the newest slot's observed
value, the expected value, the alert threshold and the band (lower and upper edge) of
values the profile calls normal, in the signal's units: requests/s for traffic, a ratio for
errors and latency (engine/generate/dashboards/anomaly.py reads exactly these names).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from engine.anomaly.live import AnomalyState

LABELS = ["slo", "service", "signal"]
OBSERVED = "slo_engine_anomaly_observed"
EXPECTED = "slo_engine_anomaly_expected"
THRESHOLD = "slo_engine_anomaly_threshold"
BAND_LOWER = "slo_engine_anomaly_band_lower"
BAND_UPPER = "slo_engine_anomaly_band_upper"
SCORE = "slo_engine_anomaly_score"
PROFILE = "slo_engine_anomaly_profile"

_BAND_GAUGES = (
    (OBSERVED, "The newest 5-minute slot's value"),
    (EXPECTED, "The value its profile expected"),
    (
        THRESHOLD,
        "The value past which it is anomalous (below it for traffic, above it for errors and "
        "latency)",
    ),
    (
        BAND_LOWER,
        "Lower edge of the band its profile calls normal (the threshold for traffic; for "
        "errors and latency the threshold mirrored below the expectation, at least 0)",
    ),
    (
        BAND_UPPER,
        "Upper edge of the band its profile calls normal (the threshold for errors and "
        "latency; for traffic the threshold mirrored above the expectation in log scale)",
    ),
)


def band_edges(signal: str, expected: float, threshold: float, slot: float) -> tuple[float, float]:
    """(lower, upper) of the band |z| < sensitivity around `expected`, from its harmful edge.

    The detector scores traffic as log(rate + one event per slot) and ratios as they are,
    symmetrically, but only the harmful edge raises anomalies: that edge is `threshold`;
    the other is its mirror image in the same scale, drawn so a panel shows the band the
    observed line should stay in. For traffic below about one request per slot the
    threshold is clamped at 0, and the mirrored edge is then a lower bound."""
    if signal == "traffic":
        offset = 1.0 / slot
        upper = (expected + offset) ** 2 / (threshold + offset) - offset
        return threshold, upper
    return max(2.0 * expected - threshold, 0.0), threshold


class AnomalyCollector(Collector):
    """slo_engine_anomaly_* gauges from the latest anomaly states."""

    def __init__(self, states: Callable[[], Sequence[AnomalyState]]) -> None:
        self._states = states

    def collect(self) -> Iterator[GaugeMetricFamily]:
        states = list(self._states())
        score = GaugeMetricFamily(
            SCORE,
            "Robust z-score of the newest 5-minute slot against its seasonal norm, signed so "
            "that positive is harmful; absent while warming up or without data.",
            labels=LABELS,
        )
        firing = GaugeMetricFamily(
            "slo_engine_anomalies_firing",
            "Anomaly alerts firing, by service and signal.",
            labels=["service", "signal"],
        )
        warming = GaugeMetricFamily(
            "slo_engine_anomaly_series_warming",
            "Anomaly series whose history is still being fetched (not scored yet).",
        )
        profile = GaugeMetricFamily(
            PROFILE,
            "1 for the profile that scored the newest slot (recent, daily or weekly: the "
            "richest its history supports); absent without a score.",
            labels=[*LABELS, "profile"],
        )
        counts: dict[tuple[str, str], int] = {}
        for state in states:
            slo = state.series.slo
            key = (slo.service, state.series.signal)
            counts[key] = counts.get(key, 0) + (1 if state.active else 0)
            if state.score is not None:
                score.add_metric([slo.id, slo.service, state.series.signal], state.score)
            if state.profile is not None:
                labels = [slo.id, slo.service, state.series.signal, state.profile]
                profile.add_metric(labels, 1.0)
        for (service, signal), n in sorted(counts.items()):
            firing.add_metric([service, signal], float(n))
        warming.add_metric([], float(sum(1 for s in states if not s.ready)))
        yield score
        yield firing
        yield warming
        yield profile
        yield from _anomaly_bands(states)


def _anomaly_bands(states: Sequence[AnomalyState]) -> Iterator[GaugeMetricFamily]:
    families = [
        GaugeMetricFamily(
            name,
            f"{text}: requests/s for traffic, a ratio for errors and latency; absent without "
            "a score.",
            labels=LABELS,
        )
        for name, text in _BAND_GAUGES
    ]
    for state in states:
        if state.band is None:
            continue
        series = state.series
        observed, expected, threshold = state.band
        lower, upper = band_edges(
            series.signal, expected, threshold, float(series.params.resolution)
        )
        labels = [series.slo.id, series.slo.service, series.signal]
        values = (observed, expected, threshold, lower, upper)
        for family, value in zip(families, values, strict=True):
            family.add_metric(labels, value)
    yield from families
