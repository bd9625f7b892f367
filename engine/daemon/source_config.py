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
from engine.daemon.source_auth import Authorization, BasicAuth, TLSConfig, fold_legacy_keys
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
    # Prometheus' blocks (engine/daemon/source_auth.py); the old flat keys are folded in.
    authorization: Authorization | None = None
    basic_auth: BasicAuth | None = None
    tls_config: TLSConfig | None = None

    @model_validator(mode="before")
    @classmethod
    def _legacy(cls, data: Any) -> Any:
        return fold_legacy_keys(data) if isinstance(data, dict) else data

    @model_validator(mode="after")
    def _pairs(self) -> Any:
        check_config_bounds(self)  # durations and counts in their documented ranges
        if self.authorization is not None and self.basic_auth is not None:
            raise ValueError(
                "authorization and basic_auth both set — a request carries one "
                "Authorization header; keep one"
            )
        return self

    def secret_files(self) -> dict[str, Path]:
        """Key (as written in the config) → file, for every secret or certificate file."""
        found: dict[str, Path | None] = {
            "authorization.credentials_file": _get(self.authorization, "credentials_file"),
            "basic_auth.password_file": _get(self.basic_auth, "password_file"),
            "tls_config.ca_file": _get(self.tls_config, "ca_file"),
            "tls_config.cert_file": _get(self.tls_config, "cert_file"),
            "tls_config.key_file": _get(self.tls_config, "key_file"),
        }
        return {key: path for key, path in found.items() if path is not None}

    # The old flat names, read-only, for code written against them.
    @property
    def bearer_token_file(self) -> Path | None:
        return _get(self.authorization, "credentials_file")

    @property
    def basic_auth_user(self) -> str | None:
        return _get(self.basic_auth, "username")

    @property
    def basic_auth_password_file(self) -> Path | None:
        return _get(self.basic_auth, "password_file")

    @property
    def ca_bundle(self) -> Path | None:
        return _get(self.tls_config, "ca_file")

    @property
    def client_cert(self) -> Path | None:
        return _get(self.tls_config, "cert_file")

    @property
    def client_key(self) -> Path | None:
        return _get(self.tls_config, "key_file")


def _get(block: BaseModel | None, key: str) -> Any:
    return None if block is None else getattr(block, key)


class DatasourceConfig(SourceAccess):
    """One Prometheus-API backend (Prometheus, Thanos, Mimir, VictoriaMetrics...). The keys
    mean what the top-level keys of the same names mean for `prometheus_url`."""

    url: HttpUrlText
