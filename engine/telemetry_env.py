"""The OpenTelemetry environment variables, read as the OTel SDK specification says, under
the daemon config's `telemetry:` keys.

An operator who sets OTEL_EXPORTER_OTLP_ENDPOINT and OTEL_SERVICE_NAME for every service
of a cluster expects slo-engine to follow them like any other SDK-instrumented process. A
`telemetry:` key the config file sets still wins (it was written for this daemon); a key it
leaves out gives way to the variable, and then to our default.

Per the spec: an empty variable is unset; a value that cannot be used is warned about and
ignored; OTEL_SDK_DISABLED=true (any case) turns every signal off. Header values are
secrets (vendor API keys): a problem with OTEL_EXPORTER_OTLP_HEADERS names the entry, never
its value.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, cast
from urllib.parse import unquote

Protocol = Literal["grpc", "http/protobuf"]
DEFAULT_SERVICE_NAME = "slo-engine"
DEFAULT_EXPORT_INTERVAL_S = 30.0
_PROTOCOLS: tuple[Protocol, ...] = ("grpc", "http/protobuf")

log = logging.getLogger("engine.telemetry")


@dataclass(frozen=True)
class OtelSettings:
    """What `engine.telemetry.setup_telemetry` is called with."""

    endpoint: str | None = None
    protocol: Protocol = "http/protobuf"
    headers: dict[str, str] = field(default_factory=dict)
    service_name: str = DEFAULT_SERVICE_NAME
    resource_attributes: dict[str, str] = field(default_factory=dict)
    export_interval_s: float = DEFAULT_EXPORT_INTERVAL_S
    disabled: bool = False

    def setup_kwargs(self) -> dict[str, Any]:
        return {
            "endpoint": None if self.disabled else self.endpoint,
            "protocol": self.protocol,
            "headers": self.headers,
            "service_name": self.service_name,
            "resource_attributes": self.resource_attributes,
            "export_interval_s": self.export_interval_s,
        }


def _env(environ: Mapping[str, str], name: str) -> str | None:
    value = environ.get(name, "").strip()
    return value or None


def parse_key_values(text: str, variable: str, *, secret: bool = False) -> dict[str, str]:
    """`key1=value1,key2=value2` (the W3C Baggage form; keys and values percent-decoded).
    A malformed entry is warned about by its position and skipped."""
    found: dict[str, str] = {}
    for number, entry in enumerate(text.split(","), start=1):
        if not entry.strip():
            continue
        key, sep, value = entry.partition("=")
        if not sep or not key.strip():
            what = "entry" if secret else repr(entry.strip())
            log.warning("%s: %s %d is not key=value; ignored", variable, what, number)
            continue
        found[unquote(key.strip())] = unquote(value.strip())
    return found


def resolve_otel(
    configured: Mapping[str, Any], environ: Mapping[str, str] | None = None
) -> OtelSettings:
    """The settings from `configured` (only the keys the config sets: `endpoint`,
    `protocol`, `headers`, `service_name`, `export_interval_s`) over the OTEL_* variables."""
    env = os.environ if environ is None else environ
    attributes = {}
    if (text := _env(env, "OTEL_RESOURCE_ATTRIBUTES")) is not None:
        attributes = parse_key_values(text, "OTEL_RESOURCE_ATTRIBUTES")
    headers = configured.get("headers")
    if headers is None and (text := _env(env, "OTEL_EXPORTER_OTLP_HEADERS")) is not None:
        headers = parse_key_values(text, "OTEL_EXPORTER_OTLP_HEADERS", secret=True)
    # OTEL_SERVICE_NAME wins over service.name in OTEL_RESOURCE_ATTRIBUTES (the spec's rule).
    service_name = (
        configured.get("service_name")
        or _env(env, "OTEL_SERVICE_NAME")
        or attributes.get("service.name")
        or DEFAULT_SERVICE_NAME
    )
    disabled = (_env(env, "OTEL_SDK_DISABLED") or "").lower() == "true"
    if disabled:
        log.info("OTEL_SDK_DISABLED=true: no traces, metrics or logs are exported")
    return OtelSettings(
        endpoint=configured.get("endpoint") or _env(env, "OTEL_EXPORTER_OTLP_ENDPOINT"),
        protocol=configured.get("protocol") or _protocol(env),
        headers=dict(headers or {}),
        service_name=str(service_name),
        resource_attributes=attributes,
        export_interval_s=configured.get("export_interval_s") or _interval(env),
        disabled=disabled,
    )


def _protocol(env: Mapping[str, str]) -> Protocol:
    value = _env(env, "OTEL_EXPORTER_OTLP_PROTOCOL")
    if value is None:
        return "http/protobuf"
    if value not in _PROTOCOLS:
        log.warning(
            "OTEL_EXPORTER_OTLP_PROTOCOL=%s is not supported (grpc or http/protobuf); "
            "using http/protobuf",
            value,
        )
        return "http/protobuf"
    return cast(Protocol, value)


def _interval(env: Mapping[str, str]) -> float:
    value = _env(env, "OTEL_METRIC_EXPORT_INTERVAL")  # milliseconds, per the spec
    if value is None:
        return DEFAULT_EXPORT_INTERVAL_S
    try:
        millis = int(value)
    except ValueError:
        millis = 0
    if millis <= 0:
        log.warning(
            "OTEL_METRIC_EXPORT_INTERVAL=%s is not a positive number of milliseconds; using %gs",
            value,
            DEFAULT_EXPORT_INTERVAL_S,
        )
        return DEFAULT_EXPORT_INTERVAL_S
    return millis / 1000
