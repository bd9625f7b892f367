"""What every notifier shares: the send contract, its two kinds of failure, receiver
configuration, and secrets that come only from files.

A notifier turns one `Notification` into one request to one receiver. It does not retry:
the outbox deliverer decides when to try again, from the error class raised here.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, Protocol, runtime_checkable

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

from engine.redact import has_userinfo, redact
from engine.retry import Clock  # noqa: F401  (the notifiers' clock type, imported from here)
from engine.spec.durations import Duration
from engine.spec.models import DurationField

if TYPE_CHECKING:
    from engine.incidents.incident import Notification


class DeliveryError(Exception):
    """A notification was not accepted by its receiver. The message never holds a secret."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class RetryableDeliveryError(DeliveryError):
    """Worth trying again later: 5xx, 408, 429, timeouts, connection failures."""

    def __init__(
        self, message: str, *, status: int | None = None, retry_after: float | None = None
    ) -> None:
        super().__init__(message, status=status)
        # Seconds the receiver asked us to wait (Retry-After); the backoff never waits less.
        self.retry_after = retry_after


class PermanentDeliveryError(DeliveryError):
    """Retrying cannot help (400/401/403/404…, invalid configuration): dead-letter it."""


@runtime_checkable
class Notifier(Protocol):
    def send(self, notification: Notification) -> None:
        """Deliver or raise RetryableDeliveryError / PermanentDeliveryError."""
        ...


@runtime_checkable
class StateSyncingNotifier(Notifier, Protocol):
    """A receiver that must be told the current state periodically (Alertmanager)."""

    def sync(self, open_incidents: Iterable[Any], now: float) -> Any: ...


# ---------------------------------------------------------------------------------------
# Secrets


class ConfigError(ValueError):
    """A receiver cannot be built from its configuration; says what to fix."""


class Secret:
    """A credential read from a file. Its repr/str never show the value; `reveal()` does.

    The file is re-read on every `reveal()` so that a rotated key (e.g. a re-mounted
    Kubernetes secret) is picked up without a restart.
    """

    __slots__ = ("_path", "_what")

    def __init__(self, path: Path, what: str) -> None:
        self._path = path
        self._what = what

    @property
    def path(self) -> Path:
        return self._path

    def reveal(self) -> str:
        try:
            value = self._path.read_text(encoding="utf-8").strip()
        except FileNotFoundError:
            raise ConfigError(
                f"{self._what}: secret file {self._path} does not exist — create it with "
                "the credential on a single line (mode 0600)"
            ) from None
        except OSError as exc:
            raise ConfigError(
                f"{self._what}: secret file {self._path} is unreadable ({exc.strerror})"
            ) from None
        if not value:
            raise ConfigError(f"{self._what}: secret file {self._path} is empty")
        if "\n" in value:
            raise ConfigError(
                f"{self._what}: secret file {self._path} has several lines; put only the "
                "credential in it"
            )
        return value

    def reveal_for_delivery(self) -> str:
        """`reveal()` for a send: a secret file that vanished or broke after start-up is
        retried (fixing the file lets the page go out) instead of dead-lettering a page."""
        try:
            return self.reveal()
        except ConfigError as exc:
            raise RetryableDeliveryError(str(exc)) from None

    def world_readable(self) -> bool:
        try:
            return bool(os.stat(self._path).st_mode & (stat.S_IRWXG | stat.S_IRWXO))
        except OSError:
            return False

    def __repr__(self) -> str:
        return f"Secret(path={str(self._path)!r}, value=***)"

    __str__ = __repr__


# ---------------------------------------------------------------------------------------
# Notifier configuration (YAML: `notifiers: {name: {type: ..., ...}}`; each name is a
# receiver of the incident config, which decides what is routed there)


def _http_url(value: str) -> str:
    if not re.match(r"^https?://[^/\s]+", value):
        raise ValueError(f"{redact(value)!r} is not an http(s) URL — write e.g. https://host/path")
    if has_userinfo(value):
        # A credential in a URL ends up in logs, error messages and /readyz; refuse it.
        raise ValueError(
            f"{redact(value)!r} carries credentials (user:password@) — remove them from the URL "
            "and use basic_auth: {username, password_file} (Prometheus) or header_files "
            "(webhooks), which keep the secret in a file"
        )
    return value


HttpUrlText = Annotated[str, AfterValidator(_http_url)]


class _BaseNotifierConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    # Total deadline of one request (connect, send and the whole response); a receiver
    # slower than this is cut off and treated like one that is down (retried with backoff).
    timeout_seconds: float = Field(default=10.0, gt=0, le=120)
    # TLS (engine/notify/tls.py): a CA bundle (PEM) for a receiver behind a private CA, and
    # a client certificate (+ key, unless in the same PEM) for receivers requiring mTLS.
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None

    @model_validator(mode="after")
    def _key_needs_cert(self) -> _BaseNotifierConfig:
        if self.key_file is not None and self.cert_file is None:
            raise ValueError("key_file needs cert_file")
        return self


class Link(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    href: HttpUrlText
    text: str


class PagerDutyConfig(_BaseNotifierConfig):
    type: Literal["pagerduty"]
    routing_key_file: Path
    url: HttpUrlText = "https://events.pagerduty.com/v2/enqueue"
    # Shown by PagerDuty as the affected system; the incident's service is the component.
    source: str = "slo-engine"
    # Static links added after the incident's runbook and dashboard links.
    links: tuple[Link, ...] = ()


class AlertmanagerConfig(_BaseNotifierConfig):
    type: Literal["alertmanager"]
    url: HttpUrlText
    # How often firing alerts are re-posted; each post is valid for 4 × this interval,
    # the same contract Prometheus keeps with Alertmanager.
    resend_interval: DurationField = Field(default_factory=lambda: Duration.parse("1m"))
    # Extra labels on every alert (e.g. env: prod) for Alertmanager routing.
    labels: dict[str, str] = Field(default_factory=dict)
    # Where "source" links in Alertmanager point when an incident has no dashboard.
    external_url: HttpUrlText | None = None

    @field_validator("labels")
    @classmethod
    def _label_names(cls, value: dict[str, str]) -> dict[str, str]:
        for name in value:
            if not re.fullmatch(r"[a-zA-Z_][a-zA-Z0-9_]*", name):
                raise ValueError(f"label name {name!r} is not a valid Prometheus label name")
        return value


class SlackConfig(_BaseNotifierConfig):
    type: Literal["slack"]
    # The incoming-webhook URL carries its own token, so it is a secret too.
    webhook_url_file: Path


_SENSITIVE_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie", "x-api-key"})


class WebhookConfig(_BaseNotifierConfig):
    type: Literal["webhook"]
    url: HttpUrlText
    # Non-secret headers only; credentials go through header_files.
    headers: dict[str, str] = Field(default_factory=dict)
    # Header name → file holding its value, e.g. {Authorization: /run/secrets/hook-auth}.
    header_files: dict[str, Path] = Field(default_factory=dict)
    # When set, X-SLO-Engine-Signature: sha256=<hex HMAC-SHA256 of the raw body>.
    secret_file: Path | None = None

    @field_validator("headers")
    @classmethod
    def _no_inline_credentials(cls, value: dict[str, str]) -> dict[str, str]:
        for name in value:
            if name.lower() in _SENSITIVE_HEADERS:
                raise ValueError(
                    f"header {name!r} carries a credential: move it to header_files "
                    f"({name}: /path/to/file) so the value never sits in the config"
                )
        return value


def iso8601(value: Any) -> str | None:
    """RFC 3339 UTC text for an epoch-seconds number; text is passed through unchanged
    (incident snapshots already hold RFC 3339 strings); None stays None."""
    if value is None or isinstance(value, str):
        return value
    moment = datetime.fromtimestamp(float(value), tz=UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def headline(notification: Notification) -> str:
    """The engine's rendered title, else `incident_headline` of the snapshot."""
    return notification.title or incident_headline(notification.incident)


def incident_headline(incident: Mapping[str, Any]) -> str:
    """One line naming an incident: "[SEV2] INC-2025-0001 checkout: summary"."""
    head = f"[{incident.get('severity')}] {incident.get('id')} {incident.get('service')}"
    summary = incident.get("summary")
    return f"{head}: {summary}" if summary else head
