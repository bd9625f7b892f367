"""A stand-in OIDC provider for API tests: signing keys made here with `cryptography`, a
JWKS served over HTTP on loopback (counting its fetches, keys swappable for rotation), and
access tokens minted with PyJWT — valid ones, and every kind of forgery a verifier must
refuse.

    with JwksServer() as provider:
        key = SigningKey.rsa("k1"); provider.publish(key)
        token = key.token(ISSUER, AUDIENCE, "alice", roles=["responder"])
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
import uuid
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

ISSUER = "https://idp.example.test/realms/ops"
AUDIENCE = "slo-engine"


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@dataclass
class SigningKey:
    kid: str
    algorithm: str
    private: Any

    @classmethod
    def rsa(cls, kid: str) -> SigningKey:
        return cls(kid, "RS256", rsa.generate_private_key(public_exponent=65537, key_size=2048))

    @classmethod
    def ec(cls, kid: str) -> SigningKey:
        return cls(kid, "ES256", ec.generate_private_key(ec.SECP256R1()))

    def jwk(self) -> dict[str, Any]:
        """The public JWK, as a provider publishes it."""
        algorithm = jwt.get_algorithm_by_name(self.algorithm)
        public = json.loads(algorithm.to_jwk(self.private.public_key()))
        return {**public, "kid": self.kid, "use": "sig", "alg": self.algorithm}

    def public_pem(self) -> bytes:
        return self.private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    def token(
        self,
        issuer: str = ISSUER,
        audience: str = AUDIENCE,
        subject: str = "alice",
        *,
        roles: list[str] | None = None,
        lifetime: float = 300,
        not_before: float | None = None,
        issued_at: float | None = None,
        kid: str | None = None,
        typ: str = "at+jwt",
        **claims: Any,
    ) -> str:
        now = time.time()
        payload: dict[str, Any] = {
            "iss": issuer,
            "aud": audience,
            "sub": subject,
            "iat": int(issued_at if issued_at is not None else now),
            "exp": int(now + lifetime),
            "jti": uuid.uuid4().hex,
            "client_id": "ops-cli",
            **claims,
        }
        if roles is not None:
            payload["roles"] = roles
        if not_before is not None:
            payload["nbf"] = int(not_before)
        headers = {"kid": kid or self.kid, "typ": typ}
        return jwt.encode(payload, self.private, algorithm=self.algorithm, headers=headers)


def unsigned(payload: dict[str, Any], kid: str) -> str:
    """`alg: none`: a token anyone can write."""
    header = {"alg": "none", "typ": "at+jwt", "kid": kid}
    return ".".join([b64url(json.dumps(header).encode()), b64url(json.dumps(payload).encode()), ""])


def hs256_with_public_key(payload: dict[str, Any], key: SigningKey) -> str:
    """The RS→HS confusion (RFC 8725 §2.1): HMAC over the token with the provider's *public*
    key as the secret — which a verifier that lets the header pick the algorithm accepts."""
    header = {"alg": "HS256", "typ": "at+jwt", "kid": key.kid}
    signing_input = f"{b64url(json.dumps(header).encode())}.{b64url(json.dumps(payload).encode())}"
    signature = hmac.new(key.public_pem(), signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64url(signature)}"


def tampered(token: str, **changes: Any) -> str:
    """The token with its payload changed and the original signature kept."""
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims.update(changes)
    return f"{header}.{b64url(json.dumps(claims).encode())}.{signature}"


def claims_of(token: str) -> dict[str, Any]:
    return jwt.decode(token, options={"verify_signature": False})


class JwksServer:
    """Serves `/jwks` on 127.0.0.1 from `keys` (swap them to rotate); counts the fetches."""

    def __init__(self) -> None:
        self.keys: list[SigningKey] = []
        self.fetches = 0
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                with server._lock:
                    server.fetches += 1
                    body = json.dumps({"keys": [k.jwk() for k in server.keys]}).encode()
                self.send_response(200 if self.path == "/jwks" else 404)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}/jwks"
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    def publish(self, *keys: SigningKey) -> None:
        with self._lock:
            self.keys = list(keys)

    def __enter__(self) -> JwksServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
