"""An offline source: SLOs evaluated against an OpenMetrics file instead of a live server.

For CI and demos. Rather than re-implementing PromQL, the file is backfilled into a
throw-away TSDB (`promtool tsdb create-blocks-from openmetrics`) and served by a private
Prometheus on a loopback port, so offline answers are exactly what Prometheus would say.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from engine.evaluation.source import SourceUnavailable, StepRates
from engine.source.prometheus import PrometheusSource
from engine.spec.durations import Duration
from engine.spec.models import SLO

if TYPE_CHECKING:
    from engine.evaluation.instant import WindowCounts


class OpenMetricsFileSource:
    """Context manager: `with OpenMetricsFileSource(path) as source: source.fetch(...)`."""

    def __init__(self, path: str | Path, **source_options: Any) -> None:
        self.path = Path(path)
        self._source_options = source_options
        self._workdir: Path | None = None
        self._server: Any = None
        self._source: PrometheusSource | None = None
        # Unix seconds of the newest sample in the file: the natural default evaluation time.
        self.latest: float = 0.0

    def __enter__(self) -> OpenMetricsFileSource:
        from engine.source.localprom import LocalPrometheus, backfill

        if not self.path.is_file():
            raise SourceUnavailable(f"OpenMetrics file {self.path} does not exist")
        for binary in ("promtool", "prometheus"):
            if shutil.which(binary) is None:
                raise SourceUnavailable(
                    f"--openmetrics needs the {binary!r} binary on PATH "
                    "(Debian/Ubuntu: apt-get install prometheus)"
                )
        self._workdir = Path(tempfile.mkdtemp(prefix="slo-engine-openmetrics-"))
        try:
            tsdb = self._workdir / "tsdb"
            backfill(self.path, tsdb)
            self.latest = _newest_sample(tsdb)
            self._server = LocalPrometheus(tsdb)
            self._server.start()
            self._source = PrometheusSource(self._server.url, **self._source_options)
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None
        if self._workdir is not None:
            shutil.rmtree(self._workdir, ignore_errors=True)
            self._workdir = None
        self._source = None

    @property
    def source(self) -> PrometheusSource:
        if self._source is None:
            raise SourceUnavailable("the OpenMetrics source is not open (use it in a `with`)")
        return self._source

    @property
    def url(self) -> str:
        return self.source.url

    def fetch(self, slos: Sequence[SLO], step: Duration, start: float, end: float) -> StepRates:
        return self.source.fetch(slos, step, start, end)

    def window_counts(
        self, slos: Sequence[SLO], windows: Sequence[Duration], at: float
    ) -> WindowCounts:
        return self.source.window_counts(slos, windows, at)


def _newest_sample(tsdb: Path) -> float:
    """Newest sample time from the blocks' meta.json (maxTime is exclusive, in ms)."""
    newest = 0
    for meta in tsdb.glob("*/meta.json"):
        newest = max(newest, int(json.loads(meta.read_text())["maxTime"]) - 1)
    if newest == 0:
        raise SourceUnavailable("the OpenMetrics file holds no samples")
    return newest / 1000
