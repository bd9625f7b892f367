"""The daemon config keys of its HTTP API's security (issue 13): who may call it (OIDC bearer
tokens beside the static token file), what anonymous callers see, TLS for the listener, the
audit log's retention and how long idempotency keys are kept.

A mixin of `DaemonConfig` (engine/daemon/config.py), like `StoreSettings`: every key is a
top-level key of the config file; `oidc:` is one section.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from engine.spec.durations import Duration
from engine.spec.models import DurationField

# Only asymmetric signatures: with an HMAC algorithm the "key" is a secret both sides hold,
# and an HS256 token "signed" with the provider's public key (RFC 8725 §2.1) would verify.
ASYMMETRIC_ALGORITHMS = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
)
# Paths of these keys, and of these (section, key), resolve against the config file's directory.
API_PATH_KEYS = ("api_token_file", "tls_cert_file", "tls_key_file", "tls_client_ca_file")
API_SECTION_PATHS = (("oidc", "jwks_file"), ("oidc", "jwks_ca_file"))
ROLE_NAMES = ("read", "responder", "admin", "security")


def _d(text: str) -> Duration:
    return Duration.parse(text)


def _loopback(host: str | None) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host or "").is_loopback
    except ValueError:
        return False


class OidcConfig(BaseModel):
    """Bearer JWT access tokens from an OpenID Connect / OAuth 2 provider (RFC 9068)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # Compared exactly with the token's `iss` (RFC 9068 §4: no prefix or case games).
    issuer: str = Field(min_length=1)
    # This API's name at the provider: the token's `aud` must contain it.
    audience: str = Field(min_length=1)
    # Where the provider publishes its signing keys; or a file holding the JWKS.
    jwks_url: str | None = None
    jwks_file: Path | None = None
    algorithms: list[str] = Field(default_factory=lambda: ["RS256", "ES256"], min_length=1)
    # Clock skew allowed on exp / nbf / iat.
    leeway: DurationField = Field(default_factory=lambda: _d("30s"))
    # RFC 9068 access tokens carry `typ: at+jwt`; true refuses ID tokens and other JWTs
    # the provider signs. Off by default: several providers still write `typ: JWT`.
    require_at_jwt: bool = False
    # The actor recorded for changes: `sub` unless the provider puts a readable name in
    # another claim (e.g. preferred_username, email).
    name_claim: str = "sub"
    # Claim holding the caller's groups or roles (a list, or a space-separated string).
    roles_claim: str = "roles"
    # Values of `roles_claim` or of the `scope`/`scp` claim → roles of this API. Scopes
    # `<scope_prefix><role>` (e.g. slo-engine:read) map to that role without a mapping.
    role_map: dict[str, list[str]] = Field(default_factory=dict)
    scope_prefix: str = "slo-engine:"
    # A token with an unknown `kid` makes the keys be fetched again — at most this often,
    # so a flood of made-up kids cannot turn the daemon into a load generator.
    jwks_min_refresh: DurationField = Field(default_factory=lambda: _d("30s"))
    # Keys are fetched again after this long even without an unknown kid (removed keys).
    jwks_max_age: DurationField = Field(default_factory=lambda: _d("1h"))
    # A CA bundle for the provider's HTTPS (default: the system's).
    jwks_ca_file: Path | None = None

    @field_validator("algorithms")
    @classmethod
    def _asymmetric(cls, value: list[str]) -> list[str]:
        bad = [a for a in value if a not in ASYMMETRIC_ALGORITHMS]
        if bad:
            raise ValueError(
                f"algorithm {bad[0]!r} is not allowed — only asymmetric signatures: "
                + ", ".join(sorted(ASYMMETRIC_ALGORITHMS))
            )
        return value

    @field_validator("role_map")
    @classmethod
    def _known_roles(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        for claim, roles in value.items():
            bad = [r for r in roles if r not in ROLE_NAMES]
            if bad:
                raise ValueError(
                    f"role_map.{claim}: unknown role {bad[0]!r} — one of {', '.join(ROLE_NAMES)}"
                )
        return value

    @model_validator(mode="after")
    def _one_key_source(self) -> OidcConfig:
        if (self.jwks_url is None) == (self.jwks_file is None):
            raise ValueError("oidc needs exactly one of jwks_url or jwks_file")
        if self.jwks_url is not None:
            parts = urlsplit(self.jwks_url)
            # Keys fetched over plain HTTP could be swapped on the way: HTTPS, except on
            # this host (a sidecar, the tests).
            if parts.scheme != "https" and not (
                parts.scheme == "http" and _loopback(parts.hostname)
            ):
                raise ValueError("oidc.jwks_url must be https:// (http only on loopback)")
        return self


class ApiSettings(BaseModel):
    """The API's security keys of the daemon config."""

    # Static bearer tokens, one per line: TOKEN [role[,role]] [name=NAME] (security.py).
    api_token_file: Path | None = None
    # OIDC bearer tokens (beside api_token_file, or instead of it).
    oidc: OidcConfig | None = None
    # Anonymous GET of the API: off — every route needs the `read` role. On only where the
    # network itself is the access control.
    anonymous_reads: bool = False
    # A customer-facing /status for anonymous visitors (what the customer template shows:
    # no responder names, no internal notes). Authenticated readers get the internal view.
    public_status_page: bool = False
    # /metrics needs the `read` role when true. Off by default: Prometheus scrapes it, and
    # the engine's own metrics hold SLO ids and counts, not incident details or names.
    metrics_auth: bool = False
    # Swagger UI at /docs (served from the swagger-ui-bundle package, nothing from a CDN).
    api_docs: bool = False
    # TLS for the listener (TLS 1.2+; certificates re-read when the files change) and,
    # with tls_client_ca_file, client certificates required (mTLS for east-west callers).
    tls_cert_file: Path | None = None
    tls_key_file: Path | None = None
    tls_client_ca_file: Path | None = None
    # Strict-Transport-Security max-age sent over HTTPS.
    hsts_max_age: DurationField = Field(default_factory=lambda: _d("365d"))
    # Audit log entries older than this are deleted.
    audit_retention: DurationField = Field(default_factory=lambda: _d("90d"))
    # How long a retried change with the same Idempotency-Key gets the stored answer.
    idempotency_ttl: DurationField = Field(default_factory=lambda: _d("24h"))

    @model_validator(mode="after")
    def _tls_pairs(self) -> ApiSettings:
        if (self.tls_cert_file is None) != (self.tls_key_file is None):
            raise ValueError("tls_cert_file and tls_key_file go together")
        if self.tls_client_ca_file is not None and self.tls_cert_file is None:
            raise ValueError("tls_client_ca_file needs tls_cert_file and tls_key_file")
        return self
