"""The daemon's config file and flags: every problem with its place, flags over keys,
relative paths, secrets only via files, and the shipped examples load."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.daemon.config import ConfigError, load_config, read_headers_file
from engine.notify.base import AlertmanagerConfig, PagerDutyConfig, WebhookConfig
from engine.spec.durations import Duration

ROOT = Path(__file__).resolve().parent.parent
MINIMAL = "specs: specs\nprometheus_url: http://127.0.0.1:9090\nstate_dir: state\n"


def problems(tmp_path: Path, text: str, overrides: dict | None = None) -> list[str]:
    path = tmp_path / "config.yml"
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_config(path, overrides)
    return [p.replace(str(path), "config.yml") for p in caught.value.problems]


def test_minimal_file_defaults_and_relative_paths(tmp_path: Path) -> None:
    (tmp_path / "config.yml").write_text(MINIMAL)
    config = load_config(tmp_path / "config.yml")
    assert config.specs == [tmp_path / "specs"]
    assert config.state_dir == tmp_path / "state"
    assert config.listen == "127.0.0.1:8080" and config.listen_port == 8080
    assert config.interval == Duration.parse("30s")
    assert config.blind_after_cycles == 3
    assert config.query_timeout == Duration.parse("10s")
    assert config.telemetry.otlp_endpoint is None
    assert config.all_notifiers() == {}


def test_flags_override_file_keys(tmp_path: Path) -> None:
    (tmp_path / "config.yml").write_text(MINIMAL + "interval: 30s\nlisten: 0.0.0.0:8080\n")
    config = load_config(
        tmp_path / "config.yml",
        {"interval": "5s", "listen": None, "webhooks": ["http://127.0.0.1:9/hook"]},
    )
    assert config.interval == Duration.parse("5s")
    assert config.listen == "0.0.0.0:8080"  # a flag not given (None) leaves the key alone
    assert isinstance(config.all_notifiers()["webhook-1"], WebhookConfig)


def test_flags_alone_are_enough(tmp_path: Path) -> None:
    config = load_config(
        None,
        {"specs": ["a", "b"], "prometheus_url": "http://p:9090", "state_dir": str(tmp_path)},
    )
    assert config.specs == [Path("a"), Path("b")]


def test_errors_point_at_file_line_and_column(tmp_path: Path) -> None:
    text = (
        MINIMAL
        + "interval: soon\n"  # line 4
        + "intervall: 5s\n"  # line 5
        + "notifiers:\n"
        + "  pd:\n"  # line 7
        + "    type: pagerduty\n"
        + "    routing_key: abc\n"  # line 9
        + "incidents:\n"
        + "  resolve_after: forever\n"  # line 11
        + "telemetry:\n"
        + "  otlp_protocol: carrier-pigeon\n"  # line 13
    )
    found = problems(tmp_path, text)
    assert (
        "config.yml:4:11: interval: 'soon' is not a duration — write it like 30s, 5m, 1h30m, 28d (units ms s m h d w y)"
        in found
    )
    assert any(p.startswith("config.yml:5:1: unknown key 'intervall'") for p in found)
    assert any(
        p.startswith("config.yml:7:3: missing required key 'routing_key_file'") for p in found
    )
    assert any(p.startswith("config.yml:9:5: unknown key 'routing_key'") for p in found)
    assert any(p.startswith("config.yml:11:18: incidents.resolve_after:") for p in found)
    assert any(p.startswith("config.yml:13:18: telemetry.otlp_protocol:") for p in found)
    assert len(found) == 6


def test_missing_required_keys_name_the_flag(tmp_path: Path) -> None:
    found = problems(tmp_path, "interval: 30s\n")
    assert (
        "config.yml:1:1: missing required key 'specs' — add specs: (or the --specs flag)" in found
    )
    assert any("'prometheus_url'" in p and "--prometheus-url" in p for p in found)
    assert any("'state_dir'" in p for p in found)


def test_bad_flag_values_name_the_flag(tmp_path: Path) -> None:
    found = problems(tmp_path, MINIMAL, {"interval": "0s", "listen": "localhost"})
    assert "--interval: must be at least 1s — e.g. 30s" in found
    assert any(p.startswith("--listen: listen 'localhost' must be HOST:PORT") for p in found)


def test_yaml_syntax_and_duplicate_keys(tmp_path: Path) -> None:
    (found,) = problems(tmp_path, MINIMAL + "interval: [30s\n")
    assert found.startswith("config.yml:5:1: invalid YAML")
    (dup,) = problems(tmp_path, MINIMAL + "specs: other\n")
    assert dup == "config.yml:4:1: key 'specs' appears twice (first on line 1) — keep one"
    (not_a_map,) = problems(tmp_path, "- a\n- b\n")
    assert "must be a mapping" in not_a_map


def test_secrets_only_from_files(tmp_path: Path) -> None:
    text = MINIMAL + (
        "notifiers:\n  hook:\n    type: webhook\n    url: http://127.0.0.1:9/h\n"
        "    headers: {Authorization: Bearer abc}\n"
    )
    (found,) = problems(tmp_path, text)
    assert found.startswith("config.yml:8:14: notifiers.hook.headers:")
    assert "header_files" in found
    (found,) = problems(tmp_path, MINIMAL + "basic_auth_password_file: pw\n")
    assert "basic_auth_password_file needs basic_auth_user" in found
    assert found.startswith("config.yml:4:1:")


def test_webhook_names_do_not_collide(tmp_path: Path) -> None:
    text = MINIMAL + (
        "webhooks: [http://127.0.0.1:9/a]\n"
        "notifiers:\n  webhook-1:\n    type: webhook\n    url: http://127.0.0.1:9/b\n"
    )
    (found,) = problems(tmp_path, text)
    assert "'webhook-1' is taken by a `webhooks:` URL" in found


def test_unreadable_config_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(tmp_path / "nope.yml")
    assert "cannot read the config file" in str(caught.value)


def test_telemetry_headers_file(tmp_path: Path) -> None:
    path = tmp_path / "headers"
    path.write_text("# vendor key\nX-Api-Key: s3cr3t\n\nX-Tenant: blue\n")
    assert read_headers_file(path) == {"X-Api-Key": "s3cr3t", "X-Tenant": "blue"}
    path.write_text("no colon here s3cr3t\n")
    with pytest.raises(ConfigError) as caught:
        read_headers_file(path)
    assert "s3cr3t" not in str(caught.value) and f"{path}:1:" in str(caught.value)


def test_shipped_examples_load() -> None:
    example = load_config(ROOT / "deploy" / "config.example.yml")
    notifiers = example.all_notifiers()
    assert list(notifiers) == ["webhook-1", "pagerduty", "alertmanager", "chat", "ops-hook"]
    assert isinstance(notifiers["pagerduty"], PagerDutyConfig)
    assert isinstance(notifiers["alertmanager"], AlertmanagerConfig)
    receivers = {r.name: r.severities for r in example.incident_config().receivers}
    assert [s.value for s in receivers["pagerduty"]] == ["SEV1", "SEV2"]
    assert len(receivers["alertmanager"]) == 4  # not listed: every severity
    assert example.specs == [ROOT / "slo_specs"]
    compose = load_config(ROOT / "deploy" / "slo-engine.yml")
    assert compose.listen == "0.0.0.0:8080"
