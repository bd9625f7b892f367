"""engine.api.security on its own: token files, authentication, the token bucket and the
idempotency cache, all on a fake clock."""

from __future__ import annotations

from pathlib import Path

import pytest
from harness.api_runtime import FakeClock

from engine.api.security import (
    IdempotencyCache,
    RateLimiter,
    StoredResponse,
    TokenFileError,
    authenticate,
    load_tokens,
    request_fingerprint,
)

ADMIN = "admin-token-Zq8w3n5v9k2m"
READER = "reader-token-Hp4t7y1u6r0e"


def test_token_file_roles_comments_and_blank_lines(tmp_path: Path):
    path = tmp_path / "tokens"
    path.write_text(f"# who has access\n\n{ADMIN}   # on-call\n  {READER} read-only\n")
    tokens = load_tokens(path)
    assert [t.role for t in tokens] == ["admin", "read-only"]
    assert authenticate(tokens, ADMIN).role == "admin"
    assert authenticate(tokens, READER).role == "read-only"
    assert authenticate(tokens, ADMIN + "x") is None
    assert authenticate(tokens, "") is None and authenticate(tokens, None) is None
    assert ADMIN not in repr(tokens) and READER not in repr(tokens)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("short-token\n", "tokens:1: token shorter than 16 characters"),
        (f"{ADMIN} superuser\n", "tokens:1: expected `TOKEN` or `TOKEN read-only`"),
        (f"# ok\n{ADMIN} read-only extra\n", "tokens:2: expected"),
    ],
)
def test_token_file_errors_name_the_line_not_the_token(tmp_path: Path, content, message):
    path = tmp_path / "tokens"
    path.write_text(content)
    with pytest.raises(TokenFileError) as caught:
        load_tokens(path)
    assert message in str(caught.value)
    assert ADMIN not in str(caught.value) and "short-token" not in str(caught.value)


def test_missing_token_file(tmp_path: Path):
    with pytest.raises(TokenFileError, match="cannot read API token file"):
        load_tokens(tmp_path / "absent")


def test_token_bucket_allows_bursts_then_the_sustained_rate():
    clock = FakeClock(0)
    limiter = RateLimiter(rate=2, burst=4, clock=clock)
    assert [limiter.acquire("a") for _ in range(4)] == [0, 0, 0, 0]
    assert limiter.acquire("a") == pytest.approx(0.5)
    assert limiter.acquire("b") == 0  # buckets are per key
    clock.advance(0.5)
    assert limiter.acquire("a") == 0
    assert limiter.acquire("a") == pytest.approx(0.5)
    clock.advance(100)
    assert [limiter.acquire("a") for _ in range(5)][-1] > 0  # refills only up to the burst


def test_idle_buckets_are_dropped_when_there_are_many():
    clock = FakeClock(0)
    limiter = RateLimiter(rate=1, burst=2, clock=clock)
    limiter.max_buckets = 3
    for key in ("a", "b", "c"):
        limiter.acquire(key)
    limiter.acquire("busy")
    limiter.acquire("busy")
    clock.advance(5)  # a, b, c (and busy) have refilled completely
    limiter.acquire("d")
    assert set(limiter._buckets) == {"d"}
    # A drained bucket that has not refilled is kept: forgetting it would reset the limit.
    limiter.max_buckets = 1
    limiter.acquire("d")
    limiter.acquire("d")
    limiter.acquire("e")
    assert "d" in limiter._buckets


def test_idempotency_cache_expires_and_is_bounded():
    clock = FakeClock(0)
    cache = IdempotencyCache(ttl=60, clock=clock, capacity=2)
    first = StoredResponse("fp1", 200, {"n": 1})
    cache.put("k1", first)
    assert cache.get("k1") == first
    clock.advance(61)
    assert cache.get("k1") is None
    for n in range(3):
        cache.put(f"x{n}", StoredResponse(f"fp{n}", 200, {"n": n}))
    assert cache.get("x0") is None and cache.get("x2") is not None
    assert cache.lock_for("x2") is cache.lock_for("x2")


def test_fingerprint_covers_method_path_and_body():
    base = request_fingerprint("POST", "/a", b"{}")
    assert base == request_fingerprint("POST", "/a", b"{}")
    assert len({base, request_fingerprint("PUT", "/a", b"{}")}) == 2
    assert len({base, request_fingerprint("POST", "/b", b"{}")}) == 2
    assert len({base, request_fingerprint("POST", "/a", b"{ }")}) == 2
