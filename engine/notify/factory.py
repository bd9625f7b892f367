"""Receivers from configuration: the `notifiers:` union of receiver configs and the one place
that turns each into its concrete notifier.

It sits above the notifier modules (they import only `engine.notify.base`), so the shared
contract never has to know the receivers that implement it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, TypeAdapter

from engine.notify.alertmanager import AlertmanagerNotifier
from engine.notify.base import (
    AlertmanagerConfig,
    Notifier,
    PagerDutyConfig,
    Secret,
    SlackConfig,
    WebhookConfig,
)
from engine.notify.pagerduty import PagerDutyNotifier
from engine.notify.slack import SlackNotifier
from engine.notify.tls import client_tls, with_resolved_files
from engine.notify.webhook import WebhookNotifier
from engine.retry import Clock

log = logging.getLogger(__name__)


NotifierConfig = Annotated[
    PagerDutyConfig | AlertmanagerConfig | SlackConfig | WebhookConfig,
    Field(discriminator="type"),
]
_NOTIFIER_CONFIGS = TypeAdapter(dict[str, NotifierConfig])


def parse_notifier_configs(data: Mapping[str, Any]) -> dict[str, NotifierConfig]:
    """Validate the `notifiers:` mapping of the daemon config (receiver name → settings)."""
    return _NOTIFIER_CONFIGS.validate_python(dict(data))


def build_notifiers(
    configs: Mapping[str, NotifierConfig | Mapping[str, Any]],
    *,
    base_dir: Path | None = None,
    clock: Clock | None = None,
) -> dict[str, Notifier]:
    """One notifier per named receiver. Relative secret paths resolve against `base_dir`
    (the config file's directory). Every secret file is read once here so a missing or
    empty file fails at start-up rather than at 3 a.m. on the first page."""
    parsed = parse_notifier_configs(configs)
    base = base_dir or Path.cwd()

    def secret(path: Path, name: str, field: str) -> Secret:
        value = Secret(path if path.is_absolute() else base / path, f"receiver {name!r} {field}")
        value.reveal()
        if value.world_readable():
            log.warning(
                "receiver %r %s %s is readable by group/others; chmod 600 it",
                name,
                field,
                value.path,
            )
        return value

    notifiers: dict[str, Notifier] = {}
    for name, given in parsed.items():
        config = with_resolved_files(given, base)
        client_tls(config)  # a missing or broken certificate fails at start-up too
        if isinstance(config, PagerDutyConfig):
            notifiers[name] = PagerDutyNotifier(
                name, config, secret(config.routing_key_file, name, "routing_key_file")
            )
        elif isinstance(config, AlertmanagerConfig):
            notifiers[name] = AlertmanagerNotifier(name, config, clock=clock or time.time)
        elif isinstance(config, SlackConfig):
            notifiers[name] = SlackNotifier(
                name, config, secret(config.webhook_url_file, name, "webhook_url_file")
            )
        else:
            notifiers[name] = WebhookNotifier(
                name,
                config,
                header_secrets={
                    header: secret(path, name, f"header_files.{header}")
                    for header, path in config.header_files.items()
                },
                signing_secret=(
                    secret(config.secret_file, name, "secret_file") if config.secret_file else None
                ),
            )
    return notifiers
