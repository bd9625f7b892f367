"""A real VictoriaMetrics single-node server on loopback, for tests against a
Prometheus-compatible backend that is not Prometheus.

VictoriaMetrics serves Prometheus' query API (`/api/v1/query`, `query_range`, ...) but
evaluates MetricsQL: `rate`/`increase` do not extrapolate, so its own answers differ slightly
from Prometheus' — tests compare with tolerance. Data goes in through its import API; the
scenario's OpenMetrics file (seconds) is re-timestamped to milliseconds on the way (VM reads
a magnitude below 2^31 as seconds, but milliseconds are its documented unit).
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import requests

from engine.source.localprom import free_port

BINARY = "victoria-metrics"
# Lines per import request: a few MB, well under the server's request limits.
_CHUNK_LINES = 50_000


def skip_reason() -> str | None:
    if shutil.which(BINARY) is None:
        return f"needs {BINARY} on PATH — install with: sudo apt-get install -y victoria-metrics"
    return None


def _om_to_import_lines(openmetrics: Path) -> Iterator[str]:
    """`name{labels} value ts_seconds` → `name{labels} value ts_ms`; comments dropped."""
    with openmetrics.open() as lines:
        for line in lines:
            if not line or line[0] == "#":
                continue
            head, _, ts = line.rstrip("\n").rpartition(" ")
            yield f"{head} {round(float(ts) * 1000)}\n"


class LocalVictoriaMetrics:
    def __init__(self, port: int | None = None, ready_timeout: float = 30.0) -> None:
        self.port = port or free_port()
        self.ready_timeout = ready_timeout
        self._dir: Path | None = None
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> LocalVictoriaMetrics:
        binary = shutil.which(BINARY)
        if binary is None:
            raise RuntimeError(skip_reason())
        self._dir = Path(tempfile.mkdtemp(prefix="slo-engine-vm-"))
        log = (self._dir / "vm.log").open("wb")
        self._proc = subprocess.Popen(
            [
                binary,
                f"-httpListenAddr=127.0.0.1:{self.port}",
                f"-storageDataPath={self._dir / 'data'}",
                "-retentionPeriod=100y",
                "-search.latencyOffset=1s",
                "-search.disableCache",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + self.ready_timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise RuntimeError(f"victoria-metrics exited:\n{self.log_tail()}")
            try:
                if requests.get(f"{self.url}/health", timeout=1).ok:
                    return self
            except requests.RequestException:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"victoria-metrics not ready in {self.ready_timeout}s")

    def import_openmetrics(self, openmetrics: Path) -> None:
        """Load a scenario file, then flush and drop caches so queries see all of it."""
        chunk: list[str] = []
        for line in _om_to_import_lines(openmetrics):
            chunk.append(line)
            if len(chunk) >= _CHUNK_LINES:
                self._post("".join(chunk))
                chunk = []
        if chunk:
            self._post("".join(chunk))
        requests.get(f"{self.url}/internal/force_flush", timeout=30).raise_for_status()
        requests.get(f"{self.url}/internal/resetRollupResultCache", timeout=30).raise_for_status()

    def _post(self, body: str) -> None:
        response = requests.post(
            f"{self.url}/api/v1/import/prometheus", data=body.encode(), timeout=120
        )
        response.raise_for_status()

    def query(self, promql: str, at: float) -> list[dict[str, Any]]:
        response = requests.get(
            f"{self.url}/api/v1/query",
            params={"query": promql, "time": f"{at:.3f}", "nocache": "1"},
            timeout=30,
        )
        response.raise_for_status()
        return response.json()["data"]["result"]

    def query_value(self, promql: str, at: float) -> float | None:
        result = self.query(promql, at)
        return float(result[0]["value"][1]) if result else None

    def log_tail(self, lines: int = 30) -> str:
        if self._dir is None or not (self._dir / "vm.log").exists():
            return ""
        return "\n".join((self._dir / "vm.log").read_text(errors="replace").splitlines()[-lines:])

    def stop(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(5)
        self._proc = None
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    def __enter__(self) -> LocalVictoriaMetrics:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
