"""The daemon's own telemetry: the config's `telemetry:` keys over the OTEL_* environment
variables (engine/telemetry_env.py), handed to engine.telemetry."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping
from typing import Any

from pydantic import TypeAdapter, ValidationError

from engine.daemon.config import DaemonConfig, read_headers_file
from engine.daemon.source_config import TelemetryConfig
from engine.notify.base import HttpUrlText
from engine.telemetry import Telemetry, setup_telemetry
from engine.telemetry_env import OtelSettings, resolve_otel

_URL: TypeAdapter[str] = TypeAdapter(HttpUrlText)
log = logging.getLogger("engine.telemetry")


def telemetry_settings(
    config: TelemetryConfig, environ: Mapping[str, str] | None = None
) -> OtelSettings:
    """Only the keys the config file sets take precedence over the environment: a default
    of ours must not hide an operator's OTEL_SERVICE_NAME."""
    given = config.model_fields_set
    configured: dict[str, Any] = {}
    if "otlp_endpoint" in given:
        configured["endpoint"] = config.otlp_endpoint
    if "otlp_protocol" in given:
        configured["protocol"] = config.otlp_protocol
    if "service_name" in given:
        configured["service_name"] = config.service_name
    if "export_interval" in given:
        configured["export_interval_s"] = config.export_interval.seconds
    if config.headers_file is not None:
        configured["headers"] = read_headers_file(config.headers_file)
    settings = resolve_otel(configured, environ)
    if "endpoint" not in configured and settings.endpoint is not None:
        try:  # the checks the config's otlp_endpoint gets (no credentials in the URL)
            _URL.validate_python(settings.endpoint)
        except ValidationError as exc:
            why = str(exc.errors()[0]["msg"]).removeprefix("Value error, ")
            log.warning("OTEL_EXPORTER_OTLP_ENDPOINT: %s; telemetry export stays off", why)
            settings = dataclasses.replace(settings, endpoint=None)
    return settings


def telemetry_from_config(config: DaemonConfig) -> Telemetry:
    return setup_telemetry(**telemetry_settings(config.telemetry).setup_kwargs())
