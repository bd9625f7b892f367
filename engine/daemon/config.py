"""The daemon's configuration: one pydantic model, read from YAML and/or `slo-engine run` flags.

Every flag of `run` is also a key here (same name, `-` → `_`); a flag given on the command
line wins over the file. Secrets never appear as values: they are paths in `*_file` keys,
read when needed (and re-read, so a rotated secret is picked up). Relative paths in the file
resolve against the file's directory, so a config works from any working directory.

Errors name the place: `config.yml:12:3: interval: ... — how to fix`, like the spec loader.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic.networks import IPvAnyNetwork

from engine.daemon.api_config import API_PATH_KEYS, API_SECTION_PATHS, ApiSettings
from engine.daemon.source_auth import (
    apply_flag_overrides,
    legacy_key_notes,
    refused_key_hint,
    resolve_block_paths,
)
from engine.daemon.source_config import (
    DatasourceConfig,
    SourceAccess,
    SourceBreakerConfig,
    TelemetryConfig,
)
from engine.daemon.store_config import StoreSettings
from engine.incidents.config import IncidentConfig, ReceiverConfig
from engine.notify.base import HttpUrlText, WebhookConfig
from engine.notify.factory import NotifierConfig
from engine.spec.durations import Duration
from engine.spec.errors import SpecError, split_hint
from engine.spec.models import DurationField
from engine.spec.yaml_lines import Mark, MarkedMap, locate, parse_yaml

DEFAULT_LISTEN = "127.0.0.1:8080"
log = logging.getLogger("engine.daemon.config")
_DATASOURCE_NAME = re.compile(r"^[a-z0-9]([a-z0-9_-]{0,62}[a-z0-9])?$")
# Receiver names given to `webhooks:` URLs, in order: webhook-1, webhook-2, ...
WEBHOOK_RECEIVER_PREFIX = "webhook-"


def _d(text: str) -> Duration:
    return Duration.parse(text)


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# The name `prometheus_url` gets among `datasources` (it is the default unless one is named).
PROMETHEUS_URL_DATASOURCE = "default"


class DaemonConfig(StoreSettings, ApiSettings, SourceAccess):  # + store/api/source_config keys
    # -- what to evaluate, against what ---------------------------------------------------
    specs: list[Path] = Field(min_length=1)
    # The default backend; `datasources` adds named ones (a service or SLO picks one with
    # `datasource:` in its spec). At least one of the two is needed.
    prometheus_url: HttpUrlText | None = None
    datasources: dict[str, DatasourceConfig] = Field(default_factory=dict)
    # Which datasource SLOs without `datasource:` read: `default` (prometheus_url) when it
    # is set, else the only datasource; must be named when there are several.
    default_datasource: str | None = None
    source_breaker: SourceBreakerConfig = Field(default_factory=SourceBreakerConfig)
    # How often Prometheus scrapes the SLIs' series. rate() needs two samples per step, so
    # the finest evaluation step is the smallest step ≥ 2 × this (and ≥ 1m) dividing every
    # window: 15s/30s → 1m, 60s → 2m30s (engine/evaluation/resolution.py).
    scrape_interval: DurationField = Field(default_factory=lambda: _d("15s"))

    # -- the daemon ---------------------------------------------------------------------
    state_dir: Path
    listen: str = DEFAULT_LISTEN
    # Addresses (or CIDR networks) of reverse proxies whose X-Forwarded-For/-Proto headers
    # are believed. Empty: nobody's are — the client address is the TCP peer's, for rate
    # limits and logs alike (a forged X-Forwarded-For cannot dodge a limit).
    trusted_proxies: list[IPvAnyNetwork] = Field(default_factory=list)
    interval: DurationField = Field(default_factory=lambda: _d("30s"))
    # How often grouped SLOs look for new groups; ≥ interval (unset: 5m, engine/daemon/groups.py).
    group_discovery_interval: DurationField | None = None
    # How often the outbox is delivered and the incident timers (escalation) run.
    delivery_interval: DurationField = Field(default_factory=lambda: _d("5s"))
    escalation_interval: DurationField = Field(default_factory=lambda: _d("15s"))
    # SIGTERM: how long to keep delivering queued notifications before exiting.
    shutdown_flush_timeout: DurationField = Field(default_factory=lambda: _d("10s"))
    # Consecutive cycles without the source before the "SLO evaluation blind" incident.
    blind_after_cycles: int = Field(default=3, ge=1)
    # How long a reload may leave the specs invalid (last good set kept) before the
    # "SLO specs invalid" warning incident (engine/daemon/specs.py InvalidSpecsTimer).
    invalid_specs_grace: DurationField = Field(default_factory=lambda: _d("10m"))
    # Links: dashboards in alerts and notifications; this daemon's public URL.
    dashboard_url: HttpUrlText | None = None
    external_url: HttpUrlText | None = None
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    # Log lines on stderr: text (people), json or logfmt (log pipelines); see engine/logs.py.
    log_format: Literal["text", "json", "logfmt"] = "text"

    # -- notifications, incidents, self-telemetry ----------------------------------------
    # Shorthand: each URL becomes a generic webhook receiver (webhook-1, webhook-2, ...).
    webhooks: list[HttpUrlText] = Field(default_factory=list)
    # Receiver name → notifier settings (pagerduty, alertmanager, slack, webhook).
    notifiers: dict[str, NotifierConfig] = Field(default_factory=dict)
    incidents: IncidentConfig = Field(default_factory=IncidentConfig)
    telemetry: TelemetryConfig = Field(default_factory=TelemetryConfig)

    @field_validator("specs", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return [value] if isinstance(value, str | Path) else value

    @field_validator("listen")
    @classmethod
    def _listen(cls, value: str) -> str:
        host_port(value)
        return value

    @field_validator("interval")
    @classmethod
    def _interval(cls, value: Duration) -> Duration:
        if value.ms < 1000:
            raise ValueError("must be at least 1s — e.g. 30s")
        return value

    @field_validator("scrape_interval")
    @classmethod
    def _scrape_interval(cls, value: Duration) -> Duration:
        if value.ms < 1000 or value.ms % 1000:
            raise ValueError("must be a whole number of seconds, at least 1s — e.g. 60s")
        return value

    @model_validator(mode="after")
    def _check(self) -> DaemonConfig:
        self._check_datasources()
        if (self.group_discovery_interval or self.interval) < self.interval:
            raise ValueError("group_discovery_interval must be at least interval — e.g. 5m")
        clash = [
            name
            for name in self.notifiers
            if re.fullmatch(re.escape(WEBHOOK_RECEIVER_PREFIX) + r"\d+", name)
            and int(name.removeprefix(WEBHOOK_RECEIVER_PREFIX)) <= len(self.webhooks)
        ]
        if clash:
            raise ValueError(
                f"notifier name {clash[0]!r} is taken by a `webhooks:` URL — rename the notifier"
            )
        return self

    def _check_datasources(self) -> None:
        if self.prometheus_url is None and not self.datasources:
            raise ValueError(
                "missing required key 'prometheus_url' — add prometheus_url: (or the "
                "--prometheus-url flag), or name backends under datasources:"
            )
        bad = [n for n in self.datasources if not _DATASOURCE_NAME.match(n)]
        if bad:
            raise ValueError(
                f"datasource name {bad[0]!r} is not valid — lowercase letters, digits, '-' and '_'"
            )
        if self.prometheus_url is not None and PROMETHEUS_URL_DATASOURCE in self.datasources:
            raise ValueError(
                f"datasource name {PROMETHEUS_URL_DATASOURCE!r} is taken by prometheus_url — "
                "rename the datasource or drop prometheus_url"
            )
        names = set(self.all_datasources())
        if self.default_datasource is not None and self.default_datasource not in names:
            raise ValueError(
                f"default_datasource {self.default_datasource!r} is not a datasource — one of "
                f"{', '.join(sorted(names))}"
            )
        if self.default_datasource is None and self.prometheus_url is None and len(names) > 1:
            raise ValueError(
                "several datasources and no default — add default_datasource: <name> "
                f"(one of {', '.join(sorted(names))})"
            )

    # -- derived ------------------------------------------------------------------------

    def all_datasources(self) -> dict[str, DatasourceConfig]:
        """`datasources` plus `prometheus_url` (with the top-level query and auth keys) as
        the datasource named `default`."""
        found = dict(self.datasources)
        if self.prometheus_url is not None:
            found[PROMETHEUS_URL_DATASOURCE] = DatasourceConfig(
                url=self.prometheus_url,
                query_timeout=self.query_timeout,
                query_retries=self.query_retries,
                concurrency=self.concurrency,
                batch_size=self.batch_size,
                authorization=self.authorization,
                basic_auth=self.basic_auth,
                tls_config=self.tls_config,
            )
        return found

    @property
    def default_datasource_name(self) -> str:
        if self.default_datasource is not None:
            return self.default_datasource
        if self.prometheus_url is not None:
            return PROMETHEUS_URL_DATASOURCE
        return next(iter(self.datasources))

    @property
    def listen_host(self) -> str:
        return host_port(self.listen)[0]

    @property
    def listen_port(self) -> int:
        return host_port(self.listen)[1]

    def all_notifiers(self) -> dict[str, NotifierConfig]:
        """`notifiers` plus one generic webhook receiver per `webhooks:` URL."""
        found: dict[str, NotifierConfig] = {
            f"{WEBHOOK_RECEIVER_PREFIX}{i}": WebhookConfig(type="webhook", url=url)
            for i, url in enumerate(self.webhooks, start=1)
        }
        found.update(self.notifiers)
        return found

    def incident_config(self) -> IncidentConfig:
        """The incident config with a receiver entry for every notifier it does not list.

        Why: a notifier configured without routing would silently receive nothing. A
        receiver missing from `incidents.receivers` gets every severity; list it there to
        narrow what it gets. Escalation-only receivers are listed with `severities: []`.
        """
        known = {r.name for r in self.incidents.receivers}
        extra = [ReceiverConfig(name=name) for name in self.all_notifiers() if name not in known]
        if not extra:
            return self.incidents
        return self.incidents.model_copy(update={"receivers": [*self.incidents.receivers, *extra]})


def host_port(listen: str) -> tuple[str, int]:
    """`127.0.0.1:8080`, `0.0.0.0:8080`, `[::1]:8080` → (host, port)."""
    host, sep, port = listen.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"listen {listen!r} must be HOST:PORT, e.g. 127.0.0.1:8080")
    return host.strip("[]"), int(port)


# ------------------------------------------------------------------------------- loading


class ConfigError(ValueError):
    """The configuration cannot be used. `problems` are `file:line:col: message` lines."""

    def __init__(self, problems: Sequence[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = list(problems)


# Keys whose values are paths: resolved against the config file's directory.
_PATH_KEYS = (
    "state_dir",
    "store_password_file",
    "bearer_token_file",
    "basic_auth_password_file",
    "ca_bundle",
    "client_cert",
    "client_key",
    *API_PATH_KEYS,
)
_NESTED_PATH_KEYS = (("telemetry", "headers_file"), ("incidents", "templates_dir"))


def _resolve_paths(data: dict[str, Any], base: Path) -> dict[str, Any]:
    def resolve(value: Any) -> Any:
        if isinstance(value, str) and value and not Path(value).is_absolute():
            return os.path.normpath(base / value)
        return value

    out = resolve_block_paths(data, resolve)
    for key in _PATH_KEYS:
        if key in out:
            out[key] = resolve(out[key])
    if "specs" in out:
        specs = out["specs"]
        out["specs"] = [resolve(s) for s in specs] if isinstance(specs, list) else resolve(specs)
    datasources = out.get("datasources")
    if isinstance(datasources, dict):
        out["datasources"] = {
            name: resolve_block_paths(
                {k: resolve(v) if k in _PATH_KEYS else v for k, v in ds.items()}, resolve
            )
            if isinstance(ds, dict)
            else ds
            for name, ds in datasources.items()
        }
    for section, key in (*_NESTED_PATH_KEYS, *API_SECTION_PATHS):
        if isinstance(out.get(section), dict) and key in out[section]:
            out[section] = {**out[section], key: resolve(out[section][key])}
    return out


def _plain(value: Any) -> Any:
    """Marked YAML containers → plain dicts/lists (pydantic must not see the subclasses)."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _message(error: Mapping[str, Any]) -> tuple[str, str]:
    kind = error["type"]
    loc = [str(p) for p in error["loc"]]
    if kind == "extra_forbidden" and (refused := refused_key_hint(tuple(loc))):
        return split_hint(refused)
    if kind == "extra_forbidden":
        return (
            f"unknown key '{loc[-1]}'",
            "check the spelling; docs/daemon.md lists every key",
        )
    if kind == "missing":
        flag = f" (or the --{loc[-1].replace('_', '-')} flag)" if len(loc) == 1 else ""
        return f"missing required key '{loc[-1]}'", f"add {loc[-1]}:{flag}"
    text = str(error["msg"]).removeprefix("Value error, ")
    return split_hint(text)


def load_config(
    path: Path | str | None = None,
    overrides: Mapping[str, Any] | None = None,
    deprecations: list[str] | None = None,
) -> DaemonConfig:
    """Read `path` (optional), apply `overrides` (the flags given), validate.

    Deprecated keys are warned about in the log, or appended to `deprecations` when given
    (`run` logs them once its logging, whose format the config sets, is in place).

    Raises ConfigError listing every problem with its place: `file:line:col` for keys from
    the file, `--flag` for values from the command line.
    """
    overrides = {k: v for k, v in (overrides or {}).items() if v is not None}
    data: dict[str, Any] = {}
    root: Any = None
    name = "<flags>"
    if path is not None:
        file = Path(path)
        name = str(file)
        try:
            text = file.read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError([f"{file}: cannot read the config file: {exc.strerror}"]) from None
        parsed = parse_yaml(text)
        if parsed.syntax_error is not None:
            err = parsed.syntax_error
            raise ConfigError(
                [str(SpecError(name, err.mark.line, err.mark.column, err.message, err.hint))]
            )
        problems = [
            str(
                SpecError(
                    name,
                    d.second.line,
                    d.second.column,
                    f"key '{d.key}' appears twice (first on line {d.first.line})",
                    "keep one",
                )
            )
            for d in parsed.duplicates
        ]
        if len(parsed.documents) > 1:
            second = parsed.documents[1].start
            problems.append(
                str(
                    SpecError(
                        name,
                        second.line,
                        second.column,
                        "one YAML document only",
                        "remove the `---`",
                    )
                )
            )
        if problems:
            raise ConfigError(problems)
        root = parsed.documents[0].data if parsed.documents else None
        if root is None:
            root = MarkedMap()
            root.mark, root.key_marks, root.value_marks = Mark(1, 1), {}, {}
        if not isinstance(root, dict):
            raise ConfigError(
                [f"{name}:1:1: the config file must be a mapping of keys (key: value)"]
            )
        data = _resolve_paths(_plain(root), file.resolve().parent)
        _deprecated(legacy_key_notes(data, root, name), deprecations)
    merged = apply_flag_overrides(data, overrides)
    try:
        return DaemonConfig.model_validate(merged)
    except ValidationError as exc:
        problems = [_place(error, root, name, overrides) for error in exc.errors()]
        if not merged.get("prometheus_url") and not merged.get("datasources"):
            # The model rule saying so only runs once every field is valid: say it anyway.
            missing = _place(
                {"type": "missing", "loc": ("prometheus_url",), "msg": ""}, root, name, {}
            )
            if not any("'prometheus_url'" in problem for problem in problems):
                problems.append(missing + " (or datasources:)")
        raise ConfigError(problems) from None


def _deprecated(notes: list[str], sink: list[str] | None) -> None:
    if sink is not None:
        sink.extend(notes)
        return
    for note in notes:
        log.warning("%s", note)


_NOTIFIER_TYPES = frozenset({"pagerduty", "alertmanager", "slack", "webhook"})


def _place(error: Any, root: Any, name: str, overrides: Mapping[str, Any]) -> str:
    loc = tuple(error["loc"])
    if len(loc) >= 3 and loc[0] == "notifiers" and loc[2] in _NOTIFIER_TYPES:
        loc = loc[:2] + loc[3:]  # drop the union tag pydantic inserts into the location
    message, hint = _message(error)
    at_key = error["type"] == "extra_forbidden"
    if not loc and isinstance(root, dict):
        # A model-level rule names the key it is about: point there.
        named = [
            k for k in root if isinstance(k, str) and re.search(rf"\b{re.escape(k)}\b", message)
        ]
        loc = (named[0],) if named else ()
        at_key = True
    where = ".".join(str(p) for p in loc)
    plain = message.startswith(("unknown key", "missing required key"))
    text = (
        f"{where}: {message}" if where and not plain and not message.startswith(where) else message
    )
    suffix = f" — {hint}" if hint else ""
    if loc and loc[0] in overrides:
        flag_text = message if len(loc) == 1 else text
        return f"--{str(loc[0]).replace('_', '-')}: {flag_text}{suffix}"
    if root is None:
        return f"{text}{suffix}"
    mark = locate(root, loc, at_key=at_key, default=Mark(1, 1))
    return str(SpecError(name, mark.line, mark.column, text, hint))


def read_headers_file(path: Path) -> dict[str, str]:
    """`Name: value` lines (blank lines and `#` comments ignored). Values are never logged."""
    headers: dict[str, str] = {}
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise ConfigError([f"{path}: cannot read telemetry headers_file: {exc.strerror}"]) from None
    for number, raw in enumerate(lines, start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition(":")
        if not sep or not key.strip():
            raise ConfigError([f"{path}:{number}: expected `Header-Name: value` (value not shown)"])
        headers[key.strip()] = value.strip()
    return headers
