"""`generate.yml`: what the generated files need from the real setup, not from the specs.

It sits beside the specs (`generate.yml` in the directory holding the first `--specs`
path: the repository root for the default `slo_specs`) or is named with `--config`. Without
one, the output is the documented placeholder setup, byte for byte as before.

    alertmanager:
      receivers:                          # name → integrations (one or more)
        pager:
          pagerduty: {routing_key_file: /etc/alertmanager/secrets/pagerduty}
        ticket:
          slack: {api_url_file: /etc/alertmanager/secrets/slack, channel: "#slo"}
        payments-pager:
          webhook: {url: "https://oncall.example.com/hook", bearer_token_file: /run/t}
      page: pager                         # where pages and tickets go by default
      ticket: ticket
      routes:                             # the route tree: first match wins
        - {owner: team-payments, page: payments-pager}
        - {tier: critical, ticket: pager}
    grafana:
      datasource_uid: mimir
      folder: Reliability
    prometheusrule:
      namespace: monitoring
      labels: {release: kube-prometheus-stack}
    format: rules                         # or prometheusrule (same as --format)
    naming: native                        # or sloth (same as --naming)

Secrets never sit in it: the generated Alertmanager config is committed, so receivers name
files (`routing_key_file`, `api_url_file`, a webhook's `bearer_token_file`) that
Alertmanager reads at run time. Alertmanager 0.25 has no `url_file` for webhooks, so a
webhook URL is written as given and may not carry credentials.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from engine.generate.provisioning import (
    DASHBOARDS_PATH,
    DATASOURCE_NAME,
    DATASOURCE_UID,
    FOLDER,
    PROMETHEUS_URL,
)
from engine.redact import has_userinfo, redact

CONFIG_NAME = "generate.yml"
RuleFormat = Literal["rules", "prometheusrule"]
Naming = Literal["native", "sloth"]

# Inline secrets people will try first, and the file field that replaces each.
_SECRET_KEYS = {"routing_key": "routing_key_file", "service_key": "routing_key_file"}
_SECRET_KEYS_SLACK = {"api_url": "api_url_file"}


class GenerateConfigError(ValueError):
    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _refuse_inline(data: Any, keys: dict[str, str]) -> Any:
    if isinstance(data, dict):
        for key, instead in keys.items():
            if key in data:
                raise ValueError(
                    f"'{key}' would put a secret in a committed file: write it to a file "
                    f"Alertmanager can read and set '{instead}' to its path"
                )
    return data


class PagerDutyReceiver(_Strict):
    routing_key_file: str = Field(min_length=1)
    # Alertmanager's default is PagerDuty's Events API v2 endpoint.
    url: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _no_inline_key(cls, data: Any) -> Any:
        return _refuse_inline(data, _SECRET_KEYS)


class SlackReceiver(_Strict):
    api_url_file: str = Field(min_length=1)
    channel: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _no_inline_url(cls, data: Any) -> Any:
        return _refuse_inline(data, _SECRET_KEYS_SLACK)


class WebhookReceiver(_Strict):
    url: str = Field(pattern=r"^https?://")
    bearer_token_file: str | None = None

    @model_validator(mode="after")
    def _no_credentials_in_url(self) -> WebhookReceiver:
        if has_userinfo(self.url) or redact(self.url) != self.url:
            raise ValueError(
                "the webhook URL carries a credential; Alertmanager 0.25 cannot read a "
                "webhook URL from a file — use bearer_token_file"
            )
        return self


class Receiver(_Strict):
    pagerduty: PagerDutyReceiver | None = None
    slack: SlackReceiver | None = None
    webhook: WebhookReceiver | None = None

    @model_validator(mode="after")
    def _some_integration(self) -> Receiver:
        if not (self.pagerduty or self.slack or self.webhook):
            raise ValueError("a receiver needs pagerduty, slack or webhook")
        return self


class Route(_Strict):
    """Alerts of the services matching every given selector go to `page` / `ticket` (the
    default receivers where one is not given)."""

    tier: str | None = None
    team: str | None = None  # the services' `labels.team`
    owner: str | None = None  # the services' `owner`
    service: str | None = None
    page: str | None = None
    ticket: str | None = None

    @model_validator(mode="after")
    def _complete(self) -> Route:
        if not any((self.tier, self.team, self.owner, self.service)):
            raise ValueError("a route needs tier, team, owner or service")
        if not (self.page or self.ticket):
            raise ValueError("a route needs page or ticket (a receiver name)")
        return self


class AlertmanagerSettings(_Strict):
    receivers: dict[str, Receiver] = Field(min_length=1)
    page: str = "pager"
    ticket: str = "ticket"
    routes: list[Route] = Field(default_factory=list)
    group_wait: str = "30s"
    group_interval: str = "5m"
    repeat_interval: str = "4h"

    @model_validator(mode="after")
    def _known_receivers(self) -> AlertmanagerSettings:
        named = [self.page, self.ticket]
        named += [n for r in self.routes for n in (r.page, r.ticket) if n]
        unknown = sorted({n for n in named if n not in self.receivers})
        if unknown:
            raise ValueError(
                f"receivers used but not defined: {', '.join(unknown)} "
                f"(defined: {', '.join(sorted(self.receivers))})"
            )
        return self


class GrafanaSettings(_Strict):
    datasource_uid: str = Field(default=DATASOURCE_UID, pattern=r"^[A-Za-z0-9_-]{1,40}$")
    datasource_name: str = DATASOURCE_NAME
    # The provisioned datasource's URL (as Grafana reaches Prometheus).
    prometheus_url: str = PROMETHEUS_URL
    folder: str = FOLDER
    dashboards_path: str = DASHBOARDS_PATH


class PrometheusRuleSettings(_Strict):
    """metadata of the PrometheusRule objects; `labels` must match the Prometheus
    resource's `ruleSelector` (kube-prometheus-stack: `release: <release name>`)."""

    namespace: str | None = None
    labels: dict[str, str] = Field(default_factory=lambda: {"role": "alert-rules"})


class GenerateConfig(_Strict):
    alertmanager: AlertmanagerSettings | None = None
    grafana: GrafanaSettings = Field(default_factory=GrafanaSettings)
    prometheusrule: PrometheusRuleSettings = Field(default_factory=PrometheusRuleSettings)
    format: RuleFormat = "rules"
    naming: Naming = "native"


def config_beside(specs: list[Path]) -> Path | None:
    """`generate.yml` in the directory holding the first spec path, if there is one."""
    if not specs:
        return None
    candidate = specs[0].resolve().parent / CONFIG_NAME
    return candidate if candidate.is_file() else None


def load_generate_config(path: Path) -> GenerateConfig:
    """Read and validate `path`; GenerateConfigError lists every problem with its key."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except OSError as exc:
        raise GenerateConfigError([f"{path}: cannot read: {exc.strerror}"]) from None
    except yaml.YAMLError as exc:
        raise GenerateConfigError([f"{path}: not YAML: {exc}"]) from None
    if not isinstance(data, dict):
        raise GenerateConfigError([f"{path}: expected a mapping of settings"])
    try:
        return GenerateConfig.model_validate(data)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            where = ".".join(str(part) for part in error["loc"])
            message = error["msg"].removeprefix("Value error, ")
            problems.append(f"{path}: {where or '(top)'}: {message}")
        raise GenerateConfigError(problems) from None
