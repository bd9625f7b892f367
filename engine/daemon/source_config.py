"""The daemon's keys for reading Prometheus-API backends, and for its own telemetry.

`SourceAccess` holds the per-backend keys (timeouts, retries, concurrency, auth, TLS); the
top level of the config has them for `prometheus_url`, and each entry of `datasources:`
has them for its own URL. Kept apart from engine/daemon/config.py so that file stays one
screenful of top-level keys.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from engine.daemon.config_bounds import check_config_bounds
from engine.notify.base import HttpUrlText
from engine.spec.durations import Duration
from engine.spec.models import DurationField


def _d(text: str) -> Duration:
    return Duration.parse(text)


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TelemetryConfig(_Section):
    """Self-telemetry over OTLP. Off unless `otlp_endpoint` is set."""

    otlp_endpoint: HttpUrlText | None = None
    otlp_protocol: Literal["http/protobuf", "grpc"] = "http/protobuf"
    # `Name: value` per line (e.g. a vendor API key header); a file because it is a secret.
    headers_file: Path | None = None
    service_name: str = "slo-engine"
    # How often OTel metrics are pushed.
    export_interval: DurationField = Field(default_factory=lambda: _d("30s"))


class SourceBreakerConfig(_Section):
    """Stop asking an unreachable Prometheus every cycle; probe again after `cooldown`."""

    failures: int = Field(default=3, ge=1)
    cooldown: DurationField = Field(default_factory=lambda: _d("30s"))


class SourceAccess(_Section):
    """How to reach one backend: the keys shared by the top level and `datasources:`."""

    # Per HTTP request to Prometheus (Prometheus is also told to give up after this long).
    query_timeout: DurationField = Field(default_factory=lambda: _d("10s"))
    # Retries per request on 5xx/timeouts/refused connections, with jittered backoff.
    query_retries: int = Field(default=2, ge=0, le=10)
    # Requests to Prometheus in flight at once.
    concurrency: int = Field(default=4, ge=1, le=64)
    # SLOs packed into one PromQL request.
    batch_size: int = Field(default=100, ge=1)
    bearer_token_file: Path | None = None
    basic_auth_user: str | None = None
    basic_auth_password_file: Path | None = None
    ca_bundle: Path | None = None
    client_cert: Path | None = None
    client_key: Path | None = None

    @model_validator(mode="after")
    def _pairs(self) -> Any:
        check_config_bounds(self)  # durations and counts in their documented ranges
        if self.basic_auth_password_file is not None and self.basic_auth_user is None:
            raise ValueError("basic_auth_password_file needs basic_auth_user")
        if self.client_key is not None and self.client_cert is None:
            raise ValueError("client_key needs client_cert")
        return self


class DatasourceConfig(SourceAccess):
    """One Prometheus-API backend (Prometheus, Thanos, Mimir, VictoriaMetrics...). The keys
    mean what the top-level keys of the same names mean for `prometheus_url`."""

    url: HttpUrlText
