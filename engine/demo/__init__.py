"""What `make demo` runs: synthetic traffic scenarios with exact ground truth, the OpenMetrics
writer that backfills them, the live traffic simulator and a local webhook sink.

The test suite and the benchmarks reuse the scenarios (their closed-form counters are the
ground truth of every real-Prometheus test); test-only helpers live in `tests/harness/`.
"""

from engine.demo.openmetrics import OpenMetricsWriter, open_openmetrics
from engine.demo.scenario import (
    LATENCY_BUCKETS,
    LE_LABELS,
    DatabaseLoad,
    Incident,
    Scenario,
    ServiceLoad,
    write_openmetrics,
)

__all__ = [
    "LATENCY_BUCKETS",
    "LE_LABELS",
    "DatabaseLoad",
    "Incident",
    "OpenMetricsWriter",
    "Scenario",
    "ServiceLoad",
    "open_openmetrics",
    "write_openmetrics",
]
