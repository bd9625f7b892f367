"""Who may change things, how often, and how a retried request stays a single effect.

Tokens come from a file, one per line (`#` comments):

    TOKEN                                   every role: today's admin token
    TOKEN read-only                         read (the old spelling of `read`)
    TOKEN responder,security name=alice     roles (engine/api/identity.py) and a name

The name is the actor recorded for what the token changes (default `token:<digest prefix>`,
never the token). Tokens are compared in constant time and never appear in logs or error
messages. Guessing them is slowed down per client address: after
`FailedAuthLimiter.failures` failed authentications within its window, that address is
refused (429) until the window has moved on. Bearer JWTs from an OIDC provider are the
other way in (engine/api/oidc.py); a static token file suits small setups.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import re
import threading
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.api.identity import ROLES, Identity, expand

# A bare `TOKEN` line: what an admin token could do before roles existed, security
# incidents included — so existing token files keep working unchanged.
LEGACY_ROLES = expand(("admin", "security"))
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@:+-]{0,99}$")
_LINE_FORMS = (
    "expected `TOKEN` or `TOKEN read-only` or `TOKEN role[,role] [name=NAME]` with roles "
    + ", ".join(ROLES)
    + " (token not shown)"
)


class TokenFileError(ValueError):
    """The token file cannot be used; the message never contains a token."""


@dataclass(frozen=True)
class ApiToken:
    # Only the SHA-256 digest is kept, so a heap dump or a repr never leaks a token.
    digest: bytes
    roles: frozenset[str] = LEGACY_ROLES
    name: str | None = None

    @property
    def role(self) -> str:
        """The old two-role view: `admin`, `read-only`, or the roles joined by commas."""
        if "admin" in self.roles:
            return "admin"
        return "read-only" if self.roles == {"read"} else ",".join(sorted(self.roles))

    @property
    def label(self) -> str:
        """Rate-limit and idempotency scope, and the actor when the token has no name."""
        return "token:" + self.digest.hex()[:16]

    def identity(self) -> Identity:
        return Identity(self.name or self.label, self.roles, "token")

    def __repr__(self) -> str:
        return f"ApiToken(roles={sorted(self.roles)!r}, name={self.name!r})"


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def _token_line(parts: list[str], where: str) -> ApiToken:
    """One line's token: `TOKEN [ROLES] [name=NAME]`."""
    secret, rest = parts[0], parts[1:]
    name = None
    if rest and rest[-1].startswith("name="):
        name = rest.pop().removeprefix("name=")
        if not _NAME_RE.match(name):
            raise TokenFileError(f"{where}: name must be 1-100 letters, digits or _.@:+-")
    if len(rest) > 1:
        raise TokenFileError(f"{where}: {_LINE_FORMS}")
    roles = LEGACY_ROLES
    if rest:
        wanted = ["read" if r == "read-only" else r for r in rest[0].split(",")]
        if not wanted or any(r not in ROLES for r in wanted):
            raise TokenFileError(f"{where}: {_LINE_FORMS}")
        roles = expand(wanted)
    if len(secret) < 16:
        raise TokenFileError(f"{where}: token shorter than 16 characters")
    return ApiToken(_digest(secret), roles, name)


def load_tokens(path: Path) -> list[ApiToken]:
    tokens: list[ApiToken] = []
    try:
        lines = path.read_text().splitlines()
    except OSError as exc:
        raise TokenFileError(f"cannot read API token file {path}: {exc.strerror}") from None
    for number, raw in enumerate(lines, start=1):
        line = raw.split("#", 1)[0].strip()
        if line:
            tokens.append(_token_line(line.split(), f"{path}:{number}"))
    return tokens


def authenticate(tokens: list[ApiToken], presented: str | None) -> ApiToken | None:
    """The matching token, comparing against every token so timing reveals nothing."""
    if not presented:
        return None
    candidate = _digest(presented)
    found: ApiToken | None = None
    for token in tokens:
        if hmac.compare_digest(token.digest, candidate):
            found = token
    return found


class RateLimiter:
    """Token bucket per client key: `rate` requests per second, bursts up to `burst`."""

    def __init__(self, rate: float, burst: int, clock: Callable[[], float]) -> None:
        self.rate, self.burst, self._clock = rate, burst, clock
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    # Above this many buckets, full (idle) ones are dropped: a full bucket is the same as
    # none, and many client addresses must not grow memory without bound.
    max_buckets = 10_000

    def acquire(self, key: str) -> float:
        """0 when allowed; otherwise the seconds to wait before retrying."""
        with self._lock:
            now = self._clock()
            if len(self._buckets) >= self.max_buckets and key not in self._buckets:
                self._drop_full(now)
            tokens, last = self._buckets.get(key, (float(self.burst), now))
            tokens = min(float(self.burst), tokens + (now - last) * self.rate)
            if tokens >= 1:
                self._buckets[key] = (tokens - 1, now)
                return 0.0
            self._buckets[key] = (tokens, now)
            return (1 - tokens) / self.rate

    def _drop_full(self, now: float) -> None:
        for key, (tokens, last) in list(self._buckets.items()):
            if tokens + (now - last) * self.rate >= self.burst:
                del self._buckets[key]


class FailedAuthLimiter:
    """Failed authentications per client address in a sliding window.

    After `failures` of them within `window` seconds, `locked(address)` answers how long
    the address must wait — and every authentication from it is refused meanwhile, a valid
    token included: otherwise the refusals would tell a guesser when it guessed right.
    Defaults: 10 failures per 60 s (a typo or two never locks anyone out).
    """

    # Above this many addresses, those without a failure in the window are forgotten: many
    # client addresses must not grow memory without bound.
    max_addresses = 10_000

    def __init__(self, failures: int, window: float, clock: Callable[[], float]) -> None:
        self.failures, self.window, self._clock = failures, window, clock
        self._seen: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def locked(self, address: str) -> float:
        """0 when `address` may try to authenticate; else the seconds to wait."""
        with self._lock:
            now = self._clock()
            times = self._recent(address, now)
            if len(times) < self.failures:
                return 0.0
            # Free again once enough failures have left the window.
            return max(1.0, math.ceil(times[-self.failures] + self.window - now))

    def record(self, address: str) -> None:
        """One failed authentication (a missing or unknown token) from `address`."""
        with self._lock:
            now = self._clock()
            if len(self._seen) >= self.max_addresses and address not in self._seen:
                for known in list(self._seen):
                    if not self._recent(known, now):
                        del self._seen[known]
            times = self._seen.setdefault(address, deque(maxlen=self.failures))
            times.append(now)

    def _recent(self, address: str, now: float) -> deque[float]:
        times = self._seen.get(address, deque())
        while times and times[0] <= now - self.window:
            times.popleft()
        return times


@dataclass(frozen=True)
class StoredResponse:
    fingerprint: str
    status: int
    body: Any


class IdempotencyCache:
    """Remembers responses by (token, Idempotency-Key) so a retried mutation has one effect.

    Reusing a key for a different request is a client bug and answered with 422, as the
    IETF idempotency-key draft suggests, rather than replaying an unrelated response.
    """

    def __init__(self, ttl: float, clock: Callable[[], float], capacity: int = 10_000) -> None:
        self.ttl, self._clock, self.capacity = ttl, clock, capacity
        self._entries: OrderedDict[str, tuple[float, StoredResponse]] = OrderedDict()
        self._lock = threading.Lock()
        # Held while a mutation runs so two concurrent retries cannot both take effect.
        self._inflight: dict[str, threading.Lock] = {}

    def lock_for(self, key: str) -> threading.Lock:
        with self._lock:
            return self._inflight.setdefault(key, threading.Lock())

    def get(self, key: str) -> StoredResponse | None:
        with self._lock:
            self._expire()
            entry = self._entries.get(key)
            return None if entry is None else entry[1]

    def put(self, key: str, response: StoredResponse) -> None:
        with self._lock:
            self._entries[key] = (self._clock(), response)
            self._entries.move_to_end(key)
            while len(self._entries) > self.capacity:
                evicted, _ = self._entries.popitem(last=False)
                self._inflight.pop(evicted, None)

    def _expire(self) -> None:
        cutoff = self._clock() - self.ttl
        while self._entries:
            key, (stored_at, _) = next(iter(self._entries.items()))
            if stored_at >= cutoff:
                break
            self._entries.pop(key)
            self._inflight.pop(key, None)


def request_fingerprint(method: str, path: str, body: bytes) -> str:
    return hashlib.sha256(method.encode() + b" " + path.encode() + b"\n" + body).hexdigest()
