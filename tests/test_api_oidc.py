"""OIDC bearer tokens against a JWKS served on loopback (keys made here with `cryptography`),
through the real app over the daemon's real Runtime (SQLite state, one cycle at T0): what
verifies, every forgery that must not (401 `invalid_token`), key rotation without a restart
under a refresh rate limit, and roles mapped from claims and scopes (403 without)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import jwt
import pytest
from fastapi.testclient import TestClient
from harness.api_runtime import FakeClock, sample_runtime
from harness.incidents import T0
from harness.oidc import (
    AUDIENCE,
    ISSUER,
    JwksServer,
    SigningKey,
    claims_of,
    hs256_with_public_key,
    tampered,
    unsigned,
)

from engine.api.app import create_app
from engine.api.oidc import JwtVerifier
from engine.daemon.api_config import OidcConfig
from engine.daemon.runtime import Runtime

ROLE_MAP = {"sre-oncall": ["responder"], "sre-leads": ["admin", "security"]}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture(scope="module")
def key() -> SigningKey:
    return SigningKey.rsa("k1")


@pytest.fixture
def provider(key: SigningKey) -> Iterator[JwksServer]:
    with JwksServer() as server:
        server.publish(key)
        yield server


@pytest.fixture
def key_clock() -> FakeClock:
    """Paces the key set's refreshes (monotonic seconds)."""
    return FakeClock(1000)


@pytest.fixture
def runtime(tmp_path: Path) -> Iterator[Runtime]:
    runtime = sample_runtime(tmp_path, FakeClock(T0 + 600), T0)
    yield runtime
    runtime.close()


def oidc_app(runtime: Runtime, provider: JwksServer, key_clock: FakeClock, **settings):
    config = OidcConfig(
        issuer=ISSUER,
        audience=AUDIENCE,
        jwks_url=provider.url,
        role_map=ROLE_MAP,
        **settings,
    )
    app = create_app(
        runtime,
        [],
        oidc=JwtVerifier(config, clock=key_clock),
        rate_limit_per_s=1000,
        burst=1000,
        auth_failures=10_000,
        clock=runtime.clock,
    )
    return TestClient(app)


@pytest.fixture
def client(runtime, provider, key_clock) -> TestClient:
    return oidc_app(runtime, provider, key_clock)


def incident_id(runtime: Runtime) -> str:
    return runtime.list_incidents("investigating", None)[0].id


# ------------------------------------------------------------------ valid tokens


def test_a_valid_token_reads_and_its_subject_is_the_actor(client, runtime, key):
    reader = key.token(subject="viewer-1", scope="openid slo-engine:read")
    assert client.get("/api/v1/slos", headers=bearer(reader)).status_code == 200
    responder = key.token(subject="alice@example.com", roles=["sre-oncall"])
    acked = client.post(
        f"/api/v1/incidents/{incident_id(runtime)}/ack", json={}, headers=bearer(responder)
    )
    assert acked.status_code == 200, acked.text
    assert acked.json()["acknowledged_by"] == "alice@example.com"
    # Within the leeway (30 s): a token that expired 10 s ago still verifies.
    late = key.token(roles=["sre-oncall"], lifetime=-10)
    assert client.get("/api/v1/slos", headers=bearer(late)).status_code == 200


def test_an_ec_key_and_another_name_claim(runtime, provider, key_clock):
    ec_key = SigningKey.ec("ec-1")
    provider.publish(ec_key)
    client = oidc_app(runtime, provider, key_clock, name_claim="preferred_username")
    token = ec_key.token(subject="u-123", roles=["sre-oncall"], preferred_username="bob")
    url = f"/api/v1/incidents/{incident_id(runtime)}/comment"
    answer = client.post(url, json={"text": "looking"}, headers=bearer(token))
    assert answer.status_code == 200, answer.text
    assert answer.json()["timeline"][-1]["actor"] == "bob"
    # An RS256 token cannot borrow the EC key's kid.
    rsa_key = SigningKey.rsa("ec-1")
    forged = rsa_key.token(roles=["sre-oncall"])
    assert client.get("/api/v1/slos", headers=bearer(forged)).status_code == 401


# ------------------------------------------------------------------ forgeries → 401


def _forgeries(key: SigningKey) -> dict[str, str]:
    now = time.time()
    valid = key.token(roles=["sre-leads"])
    no_exp = dict(claims_of(valid))
    del no_exp["exp"]
    return {
        "expired": key.token(roles=["sre-leads"], lifetime=-120),
        "not yet valid": key.token(roles=["sre-leads"], not_before=now + 600),
        "wrong issuer": key.token(issuer="https://evil.example.test/realms/ops"),
        "issuer with a trailing slash": key.token(issuer=ISSUER + "/"),
        "wrong audience": key.token(audience="another-api"),
        "unknown kid": key.token(kid="k-unknown"),
        "alg none": unsigned(claims_of(valid), key.kid),
        "HS256 signed with the public key": hs256_with_public_key(claims_of(valid), key),
        "tampered payload": tampered(valid, sub="root", roles=["sre-leads", "admin"]),
        "signed by another key with the same kid": SigningKey.rsa(key.kid).token(),
        "no exp claim": jwt.encode(
            no_exp, key.private, algorithm="RS256", headers={"kid": key.kid}
        ),
        "not a JWT at all": "a.b.c",
    }


@pytest.mark.parametrize(
    "case",
    [
        "expired",
        "not yet valid",
        "wrong issuer",
        "issuer with a trailing slash",
        "wrong audience",
        "unknown kid",
        "alg none",
        "HS256 signed with the public key",
        "tampered payload",
        "signed by another key with the same kid",
        "no exp claim",
        "not a JWT at all",
    ],
)
def test_forged_or_invalid_tokens_are_401_invalid_token(client, runtime, key, case):
    token = _forgeries(key)[case]
    before = len(runtime.get_incident(incident_id(runtime)).timeline)
    for answer in (
        client.get("/api/v1/slos", headers=bearer(token)),
        client.post(
            f"/api/v1/incidents/{incident_id(runtime)}/ack", json={}, headers=bearer(token)
        ),
    ):
        assert answer.status_code == 401, (case, answer.text)
        assert answer.json() == {"error": "invalid bearer token"}
        challenge = answer.headers["WWW-Authenticate"]
        assert challenge.startswith("Bearer") and 'error="invalid_token"' in challenge
    assert len(runtime.get_incident(incident_id(runtime)).timeline) == before


def test_typ_must_be_at_jwt_when_required(runtime, provider, key_clock, key):
    client = oidc_app(runtime, provider, key_clock, require_at_jwt=True)
    for typ in ("at+jwt", "application/at+jwt", "AT+JWT"):
        token = key.token(roles=["sre-oncall"], typ=typ)
        assert client.get("/api/v1/slos", headers=bearer(token)).status_code == 200, typ
    id_token = key.token(roles=["sre-oncall"], typ="JWT")
    assert client.get("/api/v1/slos", headers=bearer(id_token)).status_code == 401


# ------------------------------------------------------------------ key rotation


def test_a_new_key_is_picked_up_without_a_restart(client, provider, key, key_clock):
    assert (
        client.get("/api/v1/slos", headers=bearer(key.token(roles=["sre-oncall"]))).status_code
        == 200
    )
    assert provider.fetches == 1
    # The provider rotates: a new key is published beside the old one.
    new_key = SigningKey.rsa("k2")
    provider.publish(key, new_key)
    fresh = new_key.token(roles=["sre-oncall"])
    # Within the minimum refresh interval (30 s) the unknown kid does not refetch...
    key_clock.advance(10)
    assert client.get("/api/v1/slos", headers=bearer(fresh)).status_code == 401
    assert provider.fetches == 1
    # ...after it, the first token with the new kid fetches the keys once and verifies.
    key_clock.advance(30)
    assert client.get("/api/v1/slos", headers=bearer(fresh)).status_code == 200
    assert client.get("/api/v1/slos", headers=bearer(fresh)).status_code == 200
    assert provider.fetches == 2
    # The old key is withdrawn: once the cached set is older than jwks_max_age (1 h) it is
    # fetched again and tokens signed with the old key stop verifying.
    provider.publish(new_key)
    old = key.token(roles=["sre-oncall"])
    assert client.get("/api/v1/slos", headers=bearer(old)).status_code == 200
    key_clock.advance(3600)
    assert client.get("/api/v1/slos", headers=bearer(old)).status_code == 401
    assert client.get("/api/v1/slos", headers=bearer(fresh)).status_code == 200


def test_a_flood_of_unknown_kids_fetches_the_keys_at_most_once_per_interval(
    client, provider, key, key_clock
):
    assert (
        client.get("/api/v1/slos", headers=bearer(key.token(roles=["sre-oncall"]))).status_code
        == 200
    )
    assert provider.fetches == 1
    key_clock.advance(60)
    codes = {
        client.get("/api/v1/slos", headers=bearer(key.token(kid=uuid.uuid4().hex))).status_code
        for _ in range(50)
    }
    assert codes == {401}
    assert provider.fetches == 2  # one refresh for 50 unknown kids
    key_clock.advance(5)
    client.get("/api/v1/slos", headers=bearer(key.token(kid="yet-another")))
    assert provider.fetches == 2
    # Valid tokens kept working throughout.
    assert (
        client.get("/api/v1/slos", headers=bearer(key.token(roles=["sre-oncall"]))).status_code
        == 200
    )


# ------------------------------------------------------------------ roles


def test_roles_from_claims_and_scopes_decide_what_an_identity_may_do(client, runtime, key):
    ack = f"/api/v1/incidents/{incident_id(runtime)}/ack"
    silence = {"matchers": [{"name": "service", "value": "api"}], "duration": "1h", "comment": "x"}
    reader = bearer(key.token(subject="viewer", scope="slo-engine:read"))
    responder = bearer(key.token(subject="oncall", roles=["sre-oncall"]))
    lead = bearer(key.token(subject="lead", roles=["sre-leads"]))
    nobody = bearer(key.token(subject="stranger", roles=["marketing"], scope="openid"))

    # A read-only identity reads and may change nothing.
    assert client.get("/api/v1/incidents", headers=reader).status_code == 200
    refused = client.post(ack, json={}, headers=reader)
    assert refused.status_code == 403
    assert refused.json() == {"error": "this needs the responder role; this identity has: read"}
    assert client.post("/api/v1/silences", json=silence, headers=reader).status_code == 403
    # A responder acts on incidents but does not silence (admin).
    assert client.post("/api/v1/silences", json=silence, headers=responder).status_code == 403
    assert client.post(ack, json={}, headers=responder).status_code == 200
    # An admin silences; without any mapped role, not even reading is allowed.
    created = client.post("/api/v1/silences", json=silence, headers=lead)
    assert created.status_code == 201 and created.json()["created_by"] == "lead"
    assert client.get("/api/v1/slos", headers=nobody).status_code == 403
    assert runtime.get_incident(incident_id(runtime)).acknowledged_by == "oncall"


def test_security_incidents_need_the_security_role(client, key):
    responder = bearer(key.token(subject="oncall", roles=["sre-oncall"]))
    lead = bearer(key.token(subject="lead", roles=["sre-leads"]))
    body = {"service": "api", "severity": "SEV2", "title": "leaked key", "category": "security"}
    assert client.post("/api/v1/incidents", json=body, headers=responder).status_code == 403
    declared = client.post("/api/v1/incidents", json=body, headers=lead)
    assert declared.status_code == 201, declared.text
    path = f"/api/v1/incidents/{declared.json()['id']}"
    assert client.get(path, headers=lead).status_code == 200
    # For a responder without the role it does not exist: not readable, not changeable.
    assert client.get(path, headers=responder).status_code == 404
    assert client.post(f"{path}/comment", json={"text": "hi"}, headers=responder).status_code == 404
    listed = client.get("/api/v1/incidents", headers=responder).json()["incidents"]
    assert declared.json()["id"] not in {i["id"] for i in listed}


def test_a_by_field_in_a_body_is_refused_with_the_reason(client, runtime, key):
    responder = bearer(key.token(subject="oncall", roles=["sre-oncall"]))
    url = f"/api/v1/incidents/{incident_id(runtime)}/ack"
    answer = client.post(url, json={"by": "somebody-else"}, headers=responder)
    assert answer.status_code == 422
    assert "the actor is the authenticated identity" in answer.json()["error"]
    assert runtime.get_incident(incident_id(runtime)).acknowledged_at is None
    silence = {
        "matchers": [{"name": "service", "value": "api"}],
        "duration": "1h",
        "comment": "x",
        "created_by": "somebody-else",
    }
    lead = bearer(key.token(subject="lead", roles=["sre-leads"]))
    refused = client.post("/api/v1/silences", json=silence, headers=lead)
    assert refused.status_code == 422 and "`created_by` is not accepted" in refused.json()["error"]
