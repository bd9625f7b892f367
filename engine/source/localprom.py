"""Backfill OpenMetrics into a TSDB with promtool and run a real Prometheus on loopback.

A throwaway server for tests, benchmarks and the demo: its own temp directory for the
config and log, a free 127.0.0.1 port, the given TSDB directory, and a stop by pid
(terminate, then kill) so nothing else on the machine is touched.

Facts worth knowing when querying backfilled data:
- Every backfilled timestamp must be in the past; the server's own head block starts "now".
- Prometheus 2.x range selectors include both ends (`[t-w, t]`); instant queries look back
  5 minutes, so a query more than 5 min after the last sample (or before the first) is empty.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import requests
import yaml

PROMETHEUS_BINARY = "prometheus"
PROMTOOL_BINARY = "promtool"


class LocalPrometheusError(RuntimeError):
    """promtool or prometheus failed; the message carries their output."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def missing_binaries(*names: str) -> list[str]:
    """Which of the named executables are not on PATH (default: prometheus and promtool)."""
    names = names or (PROMETHEUS_BINARY, PROMTOOL_BINARY)
    return [n for n in names if shutil.which(n) is None]


def skip_reason() -> str | None:
    """Why real-Prometheus tests cannot run here (None when prometheus and promtool exist)."""
    missing = missing_binaries(PROMETHEUS_BINARY, PROMTOOL_BINARY)
    if not missing:
        return None
    return (
        f"needs {' and '.join(missing)} on PATH — install with: sudo apt-get install -y prometheus"
    )


def _require(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise LocalPrometheusError(
            f"{name} is not installed — on Debian: sudo apt-get install -y prometheus"
        )
    return path


def backfill(
    openmetrics_path: str | Path, tsdb_dir: str | Path, max_block_duration: str = "24h"
) -> Path:
    """Turn an OpenMetrics file into TSDB blocks under `tsdb_dir` (created if needed).

    `--max-block-duration=24h` (hidden in promtool 2.42's help, but accepted) makes a month
    of history ~30 blocks instead of ~360 two-hour ones, which Prometheus opens faster.
    """
    promtool = _require(PROMTOOL_BINARY)
    tsdb_dir = Path(tsdb_dir)
    tsdb_dir.mkdir(parents=True, exist_ok=True)
    cmd = [
        promtool,
        "tsdb",
        "create-blocks-from",
        "openmetrics",
        "--quiet",
        f"--max-block-duration={max_block_duration}",
        str(openmetrics_path),
        str(tsdb_dir),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise LocalPrometheusError(
            f"promtool backfill of {openmetrics_path} failed (exit {proc.returncode}):\n"
            f"{proc.stderr.strip() or proc.stdout.strip()}"
        )
    return tsdb_dir


class LocalPrometheus:
    """A real Prometheus on 127.0.0.1 serving `tsdb_dir`; use as a context manager."""

    def __init__(
        self,
        tsdb_dir: str | Path,
        rule_files: Sequence[str | Path] = (),
        port: int | None = None,
        retention: str = "100y",
        extra_config: Mapping[str, Any] | None = None,
        scrape_configs: Sequence[Mapping[str, Any]] | None = None,
        evaluation_interval: str = "15s",
        enable_lifecycle: bool = False,
        ready_timeout: float = 60.0,
        extra_args: Sequence[str] = (),
    ) -> None:
        self.tsdb_dir = Path(tsdb_dir)
        self.rule_files = [Path(p).resolve() for p in rule_files]
        self.port = port
        self.retention = retention
        self.extra_config = dict(extra_config or {})
        self.scrape_configs = [dict(c) for c in scrape_configs or ()]
        self.evaluation_interval = evaluation_interval
        self.enable_lifecycle = enable_lifecycle
        self.ready_timeout = ready_timeout
        # More command-line flags, e.g. `--enable-feature=native-histograms`.
        self.extra_args = list(extra_args)
        self._workdir: Path | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._log = None

    # ------------------------------------------------------------------ properties
    @property
    def url(self) -> str:
        if self.port is None:
            raise LocalPrometheusError("not started")
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    @property
    def log_path(self) -> Path | None:
        return self._workdir / "prometheus.log" if self._workdir else None

    @property
    def config_path(self) -> Path | None:
        return self._workdir / "prometheus.yml" if self._workdir else None

    def config(self) -> dict[str, Any]:
        """The prometheus.yml this server runs with."""
        config: dict[str, Any] = {
            "global": {"scrape_interval": "15s", "evaluation_interval": self.evaluation_interval},
            "rule_files": [str(p) for p in self.rule_files],
            "scrape_configs": self.scrape_configs,
        }
        config.update(self.extra_config)
        return config

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> LocalPrometheus:
        if self._proc is not None:
            raise LocalPrometheusError("already started")
        for rule_file in self.rule_files:
            if not rule_file.is_file():
                raise LocalPrometheusError(f"rule file {rule_file} does not exist")
        self._workdir = Path(tempfile.mkdtemp(prefix="slo-engine-prom-"))
        self.config_path.write_text(yaml.safe_dump(self.config(), sort_keys=False))
        if self.port is not None:
            return self._launch()
        # A port found free can be taken by a parallel test before we bind it: try a few.
        for attempt in range(3):
            self.port = free_port()
            try:
                return self._launch()
            except LocalPrometheusError as exc:
                if "address already in use" not in str(exc) or attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def _launch(self) -> LocalPrometheus:
        binary = _require(PROMETHEUS_BINARY)
        cmd = [
            binary,
            f"--config.file={self.config_path}",
            f"--storage.tsdb.path={self.tsdb_dir}",
            f"--storage.tsdb.retention.time={self.retention}",
            f"--web.listen-address=127.0.0.1:{self.port}",
            "--log.level=info",
        ]
        if self.enable_lifecycle:
            cmd.append("--web.enable-lifecycle")
        cmd += self.extra_args
        self._log = open(self.log_path, "wb")  # noqa: SIM115 — closed in stop()
        self._proc = subprocess.Popen(
            cmd,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=self._workdir,
            start_new_session=True,  # a Ctrl-C in the terminal is ours to forward, not its
        )
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.ready_timeout
        while time.monotonic() < deadline:
            if self._proc is not None and self._proc.poll() is not None:
                raise LocalPrometheusError(
                    f"prometheus exited with {self._proc.returncode} before becoming ready:\n{self.log_tail()}"
                )
            try:
                if requests.get(f"{self.url}/-/ready", timeout=1).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.1)
        raise LocalPrometheusError(
            f"prometheus not ready on {self.url} after {self.ready_timeout:.0f}s:\n{self.log_tail()}"
        )

    def log_tail(self, lines: int = 30) -> str:
        if self.log_path is None or not self.log_path.exists():
            return "(no log)"
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def stop(self, timeout: float = 10.0) -> None:
        """Terminate by pid, kill if it lingers; idempotent. Keeps the TSDB directory."""
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            try:
                os.kill(proc.pid, signal.SIGTERM)
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait(timeout=timeout)
            except ProcessLookupError:
                pass
        if self._log is not None:
            self._log.close()
            self._log = None

    def cleanup(self) -> None:
        """Stop and delete the config/log directory."""
        self.stop()
        if self._workdir is not None:
            shutil.rmtree(self._workdir, ignore_errors=True)

    def __enter__(self) -> LocalPrometheus:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.cleanup()

    # ------------------------------------------------------------------ queries
    def query(self, promql: str, at: float, timeout: float = 30.0) -> list[dict[str, Any]]:
        """Instant query at Unix time `at`; returns the `data.result` list (vector)."""
        response = requests.get(
            f"{self.url}/api/v1/query",
            params={"query": promql, "time": f"{at:.3f}"},
            timeout=timeout,
        )
        body = response.json()
        if response.status_code != 200 or body.get("status") != "success":
            raise LocalPrometheusError(
                f"query {promql!r} failed: {body.get('error', response.text)}"
            )
        return body["data"]["result"]

    def query_value(self, promql: str, at: float) -> float | None:
        """The single sample value of an instant query, or None for an empty result."""
        result = self.query(promql, at)
        if not result:
            return None
        if len(result) != 1:
            raise LocalPrometheusError(
                f"query {promql!r} returned {len(result)} series, expected 1"
            )
        return float(result[0]["value"][1])
