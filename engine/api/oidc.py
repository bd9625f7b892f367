"""Bearer JWT access tokens from an OIDC / OAuth 2 provider, verified as RFC 9068 and RFC 8725
ask — with PyJWT doing the signature and claim arithmetic, and this module closing the gaps
PyJWT leaves open (REFERENCE.md §7):

- the algorithm comes from an allow-list of asymmetric ones (the config refuses HS* and
  `none`) and is checked against the header *before* any key is chosen, so `alg: none` and
  an HS256 token "signed" with the provider's public key never reach a verifier;
- a key whose JWK names an `alg` verifies only that algorithm (one key, one algorithm);
- exp, iat, iss, aud and sub are *required* (PyJWT checks exp/nbf only when present); iss
  is compared exactly; exp/nbf/iat get the configured leeway;
- `typ` must be `at+jwt` / `application/at+jwt` when the config asks (PyJWT never checks);
- the key set is cached; an unknown `kid` fetches it again at most once per
  `jwks_min_refresh` (PyJWKClient refetches on every unknown kid, without a limit).

Any failure is `InvalidToken` with a reason for the log; the caller answers 401
`invalid_token` and the reason never reaches the client.
"""

from __future__ import annotations

import json
import logging
import ssl
import threading
import time
import urllib.request
from collections.abc import Callable, Mapping
from typing import Any

import jwt

from engine.api.identity import ROLES, Identity, expand
from engine.daemon.api_config import ASYMMETRIC_ALGORITHMS, OidcConfig

log = logging.getLogger("engine.api")

REQUIRED_CLAIMS = ["exp", "iat", "iss", "aud", "sub"]
AT_JWT_TYPES = frozenset({"at+jwt", "application/at+jwt"})
# EC algorithms and the one curve each may be used with (RFC 7518 §3.4).
_CURVES = {"ES256": "P-256", "ES384": "P-384", "ES512": "P-521"}
FETCH_TIMEOUT_S = 5.0
MAX_JWKS_BYTES = 512 * 1024


class InvalidToken(Exception):
    """The bearer JWT is not acceptable; the message is for the log only."""


def looks_like_jwt(token: str) -> bool:
    """Three base64url parts: a JWT (static tokens are checked against the file instead)."""
    return token.count(".") == 2


class KeySet:
    """The provider's JWKS, fetched by `fetch` (bytes of JSON), cached, refreshed on an
    unknown kid no more often than `min_refresh` seconds and after `max_age` anyway."""

    def __init__(
        self,
        fetch: Callable[[], bytes],
        min_refresh: float,
        max_age: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._fetch, self._min_refresh, self._max_age = fetch, min_refresh, max_age
        self._clock = clock
        self._keys: dict[str | None, dict[str, Any]] = {}
        self._fetched_at: float | None = None
        self._tried_at: float | None = None
        self._lock = threading.Lock()
        self.fetches = 0

    def get(self, kid: str | None) -> dict[str, Any] | None:
        """The JWK for `kid` (None: the only key, when the set has exactly one)."""
        with self._lock:
            now = self._clock()
            stale = self._fetched_at is None or now - self._fetched_at >= self._max_age
            if stale or self._lookup(kid) is None:
                self._refresh(now)
            return self._lookup(kid)

    def warm(self) -> bool:
        """Fetch the keys now (at start-up); whether any are known."""
        with self._lock:
            self._refresh(self._clock())
            return bool(self._keys)

    def _lookup(self, kid: str | None) -> dict[str, Any] | None:
        if kid is None:
            return next(iter(self._keys.values())) if len(self._keys) == 1 else None
        return self._keys.get(kid)

    def _refresh(self, now: float) -> None:
        if self._tried_at is not None and now - self._tried_at < self._min_refresh:
            return  # the rate limit: answer from the cache
        self._tried_at = now
        self.fetches += 1
        try:
            document = json.loads(self._fetch())
            keys = {k.get("kid"): k for k in document["keys"] if k.get("use", "sig") == "sig"}
        except Exception as exc:  # unreachable provider, bad JSON: keep the keys we have
            log.warning("could not refresh the OIDC signing keys: %s", type(exc).__name__)
            return
        self._keys, self._fetched_at = keys, now


def url_fetcher(url: str, ca_file: str | None = None) -> Callable[[], bytes]:
    context = ssl.create_default_context(cafile=ca_file) if url.startswith("https:") else None

    def fetch() -> bytes:
        request = urllib.request.Request(url, headers={"Accept": "application/json"})
        with urllib.request.urlopen(request, timeout=FETCH_TIMEOUT_S, context=context) as answer:
            return answer.read(MAX_JWKS_BYTES)

    return fetch


def file_fetcher(path: str) -> Callable[[], bytes]:
    def fetch() -> bytes:
        with open(path, "rb") as file:
            return file.read(MAX_JWKS_BYTES)

    return fetch


class JwtVerifier:
    """Turns a bearer JWT into an `Identity`, or raises `InvalidToken`."""

    def __init__(self, config: OidcConfig, clock: Callable[[], float] = time.monotonic) -> None:
        """`clock` paces the key set's refreshes (a test's fake clock)."""
        self.config = config
        self.algorithms = [a for a in config.algorithms if a in ASYMMETRIC_ALGORITHMS]
        fetch = (
            url_fetcher(config.jwks_url, _text(config.jwks_ca_file))
            if config.jwks_url is not None
            else file_fetcher(str(config.jwks_file))
        )
        self.keys = KeySet(
            fetch, config.jwks_min_refresh.seconds, config.jwks_max_age.seconds, clock
        )

    def verify(self, token: str) -> Identity:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise InvalidToken(f"malformed JWT ({type(exc).__name__})") from None
        algorithm = header.get("alg")
        if algorithm not in self.algorithms:
            raise InvalidToken(f"algorithm {algorithm!r} not allowed")
        if self.config.require_at_jwt and str(header.get("typ", "")).lower() not in AT_JWT_TYPES:
            raise InvalidToken("typ is not at+jwt")
        kid = header.get("kid")
        jwk = self.keys.get(kid if isinstance(kid, str) else None)
        if jwk is None:
            raise InvalidToken("unknown signing key (kid)")
        claims = self._claims(token, jwk, algorithm)
        return Identity(self._name(claims), self._roles(claims), "oidc")

    def _claims(self, token: str, jwk: Mapping[str, Any], algorithm: str) -> dict[str, Any]:
        if jwk.get("alg", algorithm) != algorithm:
            raise InvalidToken(f"key is for {jwk.get('alg')}, token says {algorithm}")
        if algorithm in _CURVES and jwk.get("crv") != _CURVES[algorithm]:
            raise InvalidToken(f"{algorithm} needs a {_CURVES[algorithm]} key")
        try:
            key = jwt.PyJWK(dict(jwk), algorithm=algorithm)
            return jwt.decode(
                token,
                key=key.key,
                algorithms=[algorithm],
                audience=self.config.audience,
                issuer=self.config.issuer,
                leeway=self.config.leeway.seconds,
                options={"require": REQUIRED_CLAIMS, "verify_signature": True},
            )
        except jwt.PyJWTError as exc:
            raise InvalidToken(f"{type(exc).__name__}: {exc}") from None

    def _name(self, claims: Mapping[str, Any]) -> str:
        name = claims.get(self.config.name_claim)
        if not isinstance(name, str) or not name.strip() or len(name) > 200:
            raise InvalidToken(f"claim {self.config.name_claim!r} is not a usable name")
        if any(ord(c) < 0x20 or ord(c) == 0x7F for c in name):
            raise InvalidToken(f"claim {self.config.name_claim!r} has control characters")
        return name.strip()

    def _roles(self, claims: Mapping[str, Any]) -> frozenset[str]:
        values = _words(claims.get(self.config.roles_claim))
        values |= _words(claims.get("scope")) | _words(claims.get("scp"))
        roles: set[str] = set()
        prefix = self.config.scope_prefix
        for value in values:
            roles.update(self.config.role_map.get(value, ()))
            if prefix and value.startswith(prefix) and value[len(prefix) :] in ROLES:
                roles.add(value[len(prefix) :])
        return expand(roles)


def _words(value: Any) -> set[str]:
    """A claim holding names: a list of strings, or one space-separated string (scope)."""
    if isinstance(value, str):
        return set(value.split())
    if isinstance(value, list):
        return {v for v in value if isinstance(v, str)}
    return set()


def _text(path: object) -> str | None:
    return None if path is None else str(path)
