"""Receiver configuration: the discriminated union, file-only secrets, and that no secret
ever shows in a repr, an error or a log line."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from pydantic import ValidationError
from test_notify_receiver import always, notification, receiver_fixture  # noqa: F401

from engine.notify.alertmanager import AlertmanagerNotifier
from engine.notify.base import (
    AlertmanagerConfig,
    ConfigError,
    PagerDutyConfig,
    PermanentDeliveryError,
    Secret,
    SlackConfig,
    WebhookConfig,
)
from engine.notify.factory import build_notifiers, parse_notifier_configs
from engine.notify.pagerduty import PagerDutyNotifier
from engine.notify.slack import SlackNotifier
from engine.notify.webhook import WebhookNotifier

KEY = "pd-routing-key-SECRET-42"
HOOK = "https://hooks.slack.example/services/T9/B9/SLACKSECRET"
HMAC = "hmac-SECRET-value"
AUTH = "Bearer AUTH-SECRET"


@pytest.fixture
def secrets(tmp_path: Path) -> dict[str, Path]:
    files = {"key": KEY, "hook": HOOK, "hmac": HMAC, "auth": AUTH}
    paths = {}
    for name, value in files.items():
        path = tmp_path / name
        path.write_text(value + "\n")
        path.chmod(0o600)
        paths[name] = path
    return paths


def all_receivers(secrets: dict[str, Path]) -> dict[str, dict]:
    return {
        "pd": {"type": "pagerduty", "routing_key_file": str(secrets["key"])},
        "am": {"type": "alertmanager", "url": "http://127.0.0.1:9093", "resend_interval": "30s"},
        "chat": {"type": "slack", "webhook_url_file": str(secrets["hook"])},
        "hook": {
            "type": "webhook",
            "url": "https://hooks.example.com/in",
            "header_files": {"Authorization": str(secrets["auth"])},
            "secret_file": str(secrets["hmac"]),
        },
    }


def test_receivers_parse_by_type(secrets) -> None:
    parsed = parse_notifier_configs(all_receivers(secrets))
    assert isinstance(parsed["pd"], PagerDutyConfig)
    assert parsed["pd"].url == "https://events.pagerduty.com/v2/enqueue"
    assert parsed["pd"].source == "slo-engine"
    assert isinstance(parsed["am"], AlertmanagerConfig)
    assert parsed["am"].resend_interval.seconds == 30
    assert isinstance(parsed["chat"], SlackConfig)
    assert isinstance(parsed["hook"], WebhookConfig)
    notifiers = build_notifiers(parsed)
    assert isinstance(notifiers["pd"], PagerDutyNotifier)
    assert isinstance(notifiers["am"], AlertmanagerNotifier)
    assert isinstance(notifiers["chat"], SlackNotifier)
    assert isinstance(notifiers["hook"], WebhookNotifier)


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"type": "opsgenie", "url": "http://x"}, "opsgenie"),
        ({"type": "pagerduty", "routing_key": "inline"}, "routing_key"),
        ({"type": "slack", "webhook_url": "https://hooks"}, "webhook_url"),
        ({"type": "webhook", "url": "ftp://x"}, "not an http"),
        ({"type": "webhook", "url": "http://x", "headers": {"Authorization": "x"}}, "header_files"),
        ({"type": "alertmanager", "url": "http://x", "labels": {"bad-name": "x"}}, "label name"),
        ({"type": "alertmanager", "url": "http://x", "resend_interval": "soon"}, "resend_interval"),
    ],
)
def test_invalid_configs_say_what_is_wrong(config, message) -> None:
    with pytest.raises(ValidationError, match=message):
        parse_notifier_configs({"r": config})


def test_missing_secret_file_fails_at_build_with_a_fix(tmp_path) -> None:
    config = {"pd": {"type": "pagerduty", "routing_key_file": "keys/pd"}}
    with pytest.raises(
        ConfigError, match=r"receiver 'pd' routing_key_file: .*keys/pd does not exist"
    ):
        build_notifiers(config, base_dir=tmp_path)
    (tmp_path / "keys").mkdir()
    (tmp_path / "keys" / "pd").write_text("  \n")
    with pytest.raises(ConfigError, match="is empty"):
        build_notifiers(config, base_dir=tmp_path)
    (tmp_path / "keys" / "pd").write_text("key\n")
    assert "pd" in build_notifiers(config, base_dir=tmp_path)


def test_world_readable_secret_is_warned_about_without_its_value(tmp_path, caplog) -> None:
    path = tmp_path / "pd"
    path.write_text(KEY)
    path.chmod(0o644)
    with caplog.at_level(logging.DEBUG):
        build_notifiers({"pd": {"type": "pagerduty", "routing_key_file": str(path)}})
    assert "chmod 600" in caplog.text
    assert KEY not in caplog.text


def test_secret_is_reread_so_rotation_needs_no_restart(tmp_path) -> None:
    path = tmp_path / "s"
    path.write_text("old\n")
    secret = Secret(path, "test")
    assert secret.reveal() == "old"
    path.write_text("new\n")
    assert secret.reveal() == "new"


def test_no_repr_or_str_shows_a_secret(secrets) -> None:
    parsed = parse_notifier_configs(all_receivers(secrets))
    notifiers = build_notifiers(parsed)
    texts = [repr(parsed), str(parsed), repr(notifiers), str(notifiers)]
    texts += [repr(n) for n in notifiers.values()] + [str(c) for c in parsed.values()]
    texts.append(repr(Secret(secrets["key"], "x")))
    texts.append(str(Secret(secrets["key"], "x")))
    joined = "\n".join(texts)
    for value in (KEY, HOOK, "SLACKSECRET", HMAC, AUTH, "AUTH-SECRET"):
        assert value not in joined
    assert "***" in repr(notifiers["pd"])


def test_delivery_errors_and_logs_never_show_secrets(secrets, receiver, caplog) -> None:
    # Every receiver answers 401 echoing what it got, like some real services do.
    def echo(_index, request):
        echoed = request.path + repr(dict(request.headers)) + request.body.decode()
        return 401, {}, echoed.encode()

    r = receiver(echo)
    (secrets["hook"]).write_text(r.url + "/services/T9/B9/SLACKSECRET\n")
    config = all_receivers(secrets)
    config["pd"]["url"] = r.url + "/v2/enqueue"
    config["hook"]["url"] = r.url + "/in"
    del config["am"]
    notifiers = build_notifiers(config)
    errors = []
    with caplog.at_level(logging.DEBUG):
        for name, notifier in notifiers.items():
            with pytest.raises(PermanentDeliveryError) as info:
                notifier.send(notification(receiver=name))
            errors.append(str(info.value))
            logging.getLogger("engine.notify").error("failed: %s", info.value)
    assert len(r.requests) == 3
    text = "\n".join(errors) + caplog.text
    for value in (KEY, "SLACKSECRET", "AUTH-SECRET", "hmac-SEC"):
        assert value[:8] not in text
    # path (Slack), routing key (PagerDuty), Authorization header (webhook) were redacted.
    assert text.count("***") >= 3


def test_secret_file_removed_after_start_is_a_retryable_error_naming_the_file(tmp_path) -> None:
    from engine.notify.base import RetryableDeliveryError

    path = tmp_path / "pd.key"
    path.write_text(KEY)
    path.chmod(0o600)
    notifier = build_notifiers({"pd": {"type": "pagerduty", "routing_key_file": str(path)}})["pd"]
    path.unlink()
    with pytest.raises(RetryableDeliveryError, match=r"pd.key does not exist"):
        notifier.send(notification())
