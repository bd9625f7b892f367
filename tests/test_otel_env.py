"""The OTEL_* environment variables, per the OpenTelemetry SDK specification, under the daemon
config's `telemetry:` keys: each variable is read, a key the config sets wins and a key it
leaves out gives way, bad values are warned about and ignored, header values never reach a
log; and a daemon configured by OTEL_* alone exports to a real OTLP/HTTP receiver."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from test_daemon_runtime import Clock, ScriptedSource, make_config
from test_telemetry_otlp import OTLPReceiver, receiver  # noqa: F401 (fixture)

from engine.daemon.runtime import Runtime
from engine.daemon.self_telemetry import telemetry_settings
from engine.daemon.source_config import TelemetryConfig
from engine.demo.webhook_sink import WebhookSink
from engine.telemetry_env import resolve_otel

SECRET = "k3y-s3cr3t"
ENV = {
    "OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector.example:4318",
    "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
    "OTEL_EXPORTER_OTLP_HEADERS": f"X-Api-Key={SECRET},X-Tenant=green%20team",
    "OTEL_SERVICE_NAME": "slo-engine-eu",
    "OTEL_RESOURCE_ATTRIBUTES": "deployment.environment=prod,service.name=overridden,team=sre%2Cplatform",
    "OTEL_METRIC_EXPORT_INTERVAL": "5000",
}


def test_defaults_without_variables_or_keys() -> None:
    settings = telemetry_settings(TelemetryConfig(), {})
    assert settings.setup_kwargs() == {
        "endpoint": None,
        "protocol": "http/protobuf",
        "headers": {},
        "service_name": "slo-engine",
        "resource_attributes": {},
        "export_interval_s": 30.0,
    }


def test_every_variable_is_read_when_the_config_leaves_the_key_out() -> None:
    settings = telemetry_settings(TelemetryConfig(), ENV)
    assert settings.endpoint == "http://collector.example:4318"
    assert settings.protocol == "grpc"
    assert settings.headers == {"X-Api-Key": SECRET, "X-Tenant": "green team"}
    # OTEL_SERVICE_NAME wins over service.name in OTEL_RESOURCE_ATTRIBUTES.
    assert settings.service_name == "slo-engine-eu"
    assert settings.resource_attributes["deployment.environment"] == "prod"
    assert settings.resource_attributes["team"] == "sre,platform"  # percent-decoded
    assert settings.export_interval_s == 5.0  # milliseconds in the variable
    assert not settings.disabled
    # service.name from the resource attributes when OTEL_SERVICE_NAME is unset.
    alone = {"OTEL_RESOURCE_ATTRIBUTES": "service.name=from-attributes"}
    assert telemetry_settings(TelemetryConfig(), alone).service_name == "from-attributes"


def test_a_key_the_config_sets_wins(tmp_path: Path) -> None:
    headers = tmp_path / "headers"
    headers.write_text("X-Tenant: blue\n")
    config = TelemetryConfig(
        otlp_endpoint="http://127.0.0.1:4318",
        otlp_protocol="http/protobuf",
        headers_file=headers,
        service_name="slo-engine",  # written out: wins although it is also the default
        export_interval="10s",
    )
    settings = telemetry_settings(config, ENV)
    assert settings.endpoint == "http://127.0.0.1:4318"
    assert settings.protocol == "http/protobuf"
    assert settings.headers == {"X-Tenant": "blue"}
    assert settings.service_name == "slo-engine"
    assert settings.export_interval_s == 10.0
    # Only the keys it sets: the rest still comes from the environment.
    partial = telemetry_settings(TelemetryConfig(service_name="mine"), ENV)
    assert (partial.service_name, partial.protocol) == ("mine", "grpc")


def test_sdk_disabled_turns_every_export_off() -> None:
    configured = TelemetryConfig(otlp_endpoint="http://127.0.0.1:4318")
    for value in ("true", "TRUE", " True "):
        settings = telemetry_settings(configured, {"OTEL_SDK_DISABLED": value})
        assert settings.disabled and settings.setup_kwargs()["endpoint"] is None
    for value in ("false", "", "1"):
        settings = telemetry_settings(configured, {"OTEL_SDK_DISABLED": value})
        assert settings.setup_kwargs()["endpoint"] == "http://127.0.0.1:4318"


def test_bad_values_are_warned_about_and_ignored(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="engine.telemetry")
    settings = resolve_otel(
        {},
        {
            "OTEL_EXPORTER_OTLP_PROTOCOL": "http/json",
            "OTEL_METRIC_EXPORT_INTERVAL": "soon",
            "OTEL_EXPORTER_OTLP_HEADERS": f"X-Api-Key={SECRET},Bearer {SECRET}",
            "OTEL_SERVICE_NAME": "   ",  # empty: unset
        },
    )
    assert settings.protocol == "http/protobuf"
    assert settings.export_interval_s == 30.0
    assert settings.headers == {"X-Api-Key": SECRET}
    assert settings.service_name == "slo-engine"
    messages = [r.getMessage() for r in caplog.records]
    assert any(
        m.startswith("OTEL_EXPORTER_OTLP_PROTOCOL=http/json is not supported") for m in messages
    )
    assert any(m.startswith("OTEL_METRIC_EXPORT_INTERVAL=soon") for m in messages)
    assert "OTEL_EXPORTER_OTLP_HEADERS: entry 2 is not key=value; ignored" in messages
    assert SECRET not in caplog.text


def test_an_endpoint_with_credentials_is_refused_like_the_configs(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="engine.telemetry")
    endpoint = f"https://user:{SECRET}@collector.example:4318"
    settings = telemetry_settings(TelemetryConfig(), {"OTEL_EXPORTER_OTLP_ENDPOINT": endpoint})
    assert settings.endpoint is None
    assert (
        "OTEL_EXPORTER_OTLP_ENDPOINT: 'https://***@collector.example:4318' carries" in caplog.text
    )
    assert SECRET not in caplog.text


def test_a_daemon_exports_where_the_variables_say(
    tmp_path: Path,
    receiver: OTLPReceiver,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.url)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS", "X-Tenant=green%20team")
    monkeypatch.setenv("OTEL_SERVICE_NAME", "slo-engine-eu")
    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "deployment.environment=prod")
    with WebhookSink() as sink:
        runtime = Runtime(make_config(tmp_path, sink), clock=Clock(), source=ScriptedSource())
        try:
            runtime.run_cycle()
            assert runtime.telemetry.tracer_provider.force_flush(10_000)
        finally:
            runtime.close()
    assert receiver.tenants == {"green team"}
    assert any(s.name == "slo_engine.cycle" for s in receiver.spans())
    resource = receiver.traces[0].resource_spans[0].resource
    attributes = {a.key: a.value.string_value for a in resource.attributes}
    assert attributes["service.name"] == "slo-engine-eu"
    assert attributes["deployment.environment"] == "prod"


def test_sdk_disabled_sends_nothing_even_to_a_configured_endpoint(
    tmp_path: Path,
    receiver: OTLPReceiver,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OTEL_SDK_DISABLED", "true")
    with WebhookSink() as sink:
        config = make_config(tmp_path, sink, telemetry={"otlp_endpoint": receiver.url})
        runtime = Runtime(config, clock=Clock(), source=ScriptedSource())
        try:
            runtime.run_cycle()
            runtime.telemetry.tracer_provider.force_flush(10_000)
            runtime.telemetry.meter_provider.force_flush(10_000)
        finally:
            runtime.close()
    assert receiver.traces == [] and receiver.metrics == []
