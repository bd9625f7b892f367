"""Test harness: synthetic traffic scenarios, OpenMetrics backfill files and a local Prometheus.

Used by the test suite, the benchmarks and `make demo`; it is shipped with the package so
users can reproduce a test against their own Prometheus binaries.
"""

from engine.testing.openmetrics import OpenMetricsWriter, open_openmetrics
from engine.testing.scenario import (
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
