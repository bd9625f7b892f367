"""TLS for the API and for notifiers, with certificates made here (`cryptography`): the
daemon's uvicorn settings (engine.api.server) serve HTTPS with HSTS and TLS 1.2+ only,
require client certificates when given a client CA (mTLS), and pick up rotated certificate
files without a restart; a webhook notifier with a CA bundle and a client certificate
reaches an mTLS receiver, and one without the certificate is refused."""

from __future__ import annotations

import contextlib
import json
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import requests
import uvicorn
from cryptography import x509
from fastapi.testclient import TestClient
from harness.api_runtime import FakeClock, sample_runtime
from harness.certs import Issued, TestCA
from harness.incidents import T0

from engine.api.app import create_app
from engine.api.server import server_config
from engine.api.tls import ServerTLS, TLSFilesError
from engine.daemon.runtime import Runtime
from engine.incidents.incident import Notification
from engine.notify.base import ConfigError, RetryableDeliveryError
from engine.notify.factory import build_notifiers
from engine.source.localprom import free_port


@pytest.fixture
def ca(tmp_path: Path) -> TestCA:
    return TestCA(tmp_path)


@pytest.fixture
def runtime(tmp_path: Path) -> Iterator[Runtime]:
    runtime = sample_runtime(tmp_path, FakeClock(T0 + 600), T0)
    yield runtime
    runtime.close()


@contextmanager
def serve_tls(app: Any, tls: ServerTLS) -> Iterator[str]:
    """The app behind the daemon's uvicorn settings with `tls`, on a free loopback port."""
    port = free_port()
    config = server_config(
        app,
        tls=tls,
        host="127.0.0.1",
        port=port,
        log_level="warning",
        lifespan="off",
        timeout_graceful_shutdown=1,  # as the daemon: refused handshakes leave sockets
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    try:
        yield f"https://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)


def peer_serial(url: str, ca_file: Path, client: Issued | None = None) -> int:
    """The serial number of the certificate the server presents to a new connection."""
    context = ssl.create_default_context(cafile=str(ca_file))
    if client is not None:
        context.load_cert_chain(client.cert, client.key)
    host, port = url.removeprefix("https://").split(":")
    with (
        socket.create_connection((host, int(port)), timeout=5) as raw,
        context.wrap_socket(raw, server_hostname=host) as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return x509.load_der_x509_certificate(der).serial_number


def tls_1_1_client() -> ssl.SSLContext:
    """A client offering TLS 1.1 at most (security level 0 lets OpenSSL enable it)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    context.set_ciphers("DEFAULT:@SECLEVEL=0")
    context.minimum_version = context.maximum_version = ssl.TLSVersion.TLSv1_1
    return context


def old_server_accepts(client: ssl.SSLContext, cert: Issued) -> str | None:
    """The protocol `client` agrees on with a server that still allows TLS 1.1."""
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.set_ciphers("DEFAULT:@SECLEVEL=0")
    server.minimum_version = ssl.TLSVersion.TLSv1_1
    server.load_cert_chain(cert.cert, cert.key)
    with socket.create_server(("127.0.0.1", 0)) as listener:

        def accept() -> None:
            connection, _ = listener.accept()
            with contextlib.suppress(OSError), server.wrap_socket(connection, server_side=True):
                pass

        thread = threading.Thread(target=accept, daemon=True)
        thread.start()
        with (
            socket.create_connection(listener.getsockname(), timeout=5) as raw,
            client.wrap_socket(raw) as tls,
        ):
            version = tls.version()
        thread.join(timeout=5)
    return version


# ------------------------------------------------------------------ the listener


def test_https_with_hsts_and_tls_1_1_refused(runtime, ca, tmp_path):
    server_cert = ca.issue("127.0.0.1", server=True)
    app = create_app(runtime, [], clock=runtime.clock)
    with serve_tls(app, ServerTLS(server_cert.cert, server_cert.key)) as url:
        answer = requests.get(f"{url}/healthz", verify=str(ca.pem), timeout=5)
        assert answer.status_code == 200
        assert answer.headers["Strict-Transport-Security"] == (
            "max-age=31536000; includeSubDomains"
        )
        # Refused reads are HTTPS answers too, with HSTS.
        refused = requests.get(f"{url}/api/v1/slos", verify=str(ca.pem), timeout=5)
        assert refused.status_code == 401 and "Strict-Transport-Security" in refused.headers
        # Plain HTTP to the TLS port gets no answer.
        with pytest.raises(requests.ConnectionError):
            requests.get(url.replace("https", "http") + "/healthz", timeout=5)

        # A client that offers TLS 1.1 at most is refused by the server (an alert, or the
        # connection closed) — and it really offers TLS 1.1: a server that allows it talks.
        old = tls_1_1_client()
        assert old_server_accepts(old, server_cert) == "TLSv1.1"
        host, port = url.removeprefix("https://").split(":")
        with (
            socket.create_connection((host, int(port)), timeout=5) as raw,
            pytest.raises(ssl.SSLError) as refused_handshake,
        ):
            old.wrap_socket(raw, server_hostname=host)
        assert refused_handshake.value.reason in (
            "TLSV1_ALERT_PROTOCOL_VERSION",
            "UNSUPPORTED_PROTOCOL",
            "UNEXPECTED_EOF_WHILE_READING",
        ), refused_handshake.value
        # TLS 1.2 is accepted.
        modern = ssl.create_default_context(cafile=str(ca.pem))
        modern.maximum_version = ssl.TLSVersion.TLSv1_2
        with (
            socket.create_connection((host, int(port)), timeout=5) as raw,
            modern.wrap_socket(raw, server_hostname=host) as tls,
        ):
            assert tls.version() == "TLSv1.2"


def test_plain_http_has_no_hsts(runtime):
    answer = TestClient(create_app(runtime, [], clock=runtime.clock)).get("/healthz")
    assert "Strict-Transport-Security" not in answer.headers


def test_client_certificates_when_a_client_ca_is_configured(runtime, ca, tmp_path):
    server_cert = ca.issue("127.0.0.1", server=True)
    client_ca = TestCA(tmp_path, "east-west CA")
    caller = client_ca.issue("status-exporter", server=False)
    stranger = TestCA(tmp_path, "other CA").issue("stranger", server=False)
    tls = ServerTLS(server_cert.cert, server_cert.key, client_ca.pem)
    with serve_tls(create_app(runtime, [], clock=runtime.clock), tls) as url:
        ok = requests.get(
            f"{url}/healthz",
            verify=str(ca.pem),
            cert=(str(caller.cert), str(caller.key)),
            timeout=5,
        )
        assert ok.status_code == 200
        for cert in (None, (str(stranger.cert), str(stranger.key))):
            with pytest.raises((requests.exceptions.SSLError, requests.ConnectionError)):
                requests.get(f"{url}/healthz", verify=str(ca.pem), cert=cert, timeout=5)


def test_rotated_certificate_files_are_served_without_a_restart(runtime, ca, tmp_path):
    first = ca.issue("127.0.0.1", server=True, stem="server")
    clock = FakeClock(0)
    tls = ServerTLS(first.cert, first.key, clock=clock)
    with serve_tls(create_app(runtime, [], clock=runtime.clock), tls) as url:
        assert peer_serial(url, ca.pem) == first.serial
        # cert-manager writes the renewed pair over the old files.
        second = ca.issue("127.0.0.1", server=True, stem="server")
        assert second.cert == first.cert and second.serial != first.serial
        clock.advance(0.5)  # files are looked at no more than once a second
        assert peer_serial(url, ca.pem) == first.serial
        clock.advance(1)
        assert peer_serial(url, ca.pem) == second.serial
        assert requests.get(f"{url}/healthz", verify=str(ca.pem), timeout=5).status_code == 200
        # A broken file (half-written) is not served: the last good certificate stays.
        first.cert.write_text("-----BEGIN CERTIFICATE-----\ntruncated")
        clock.advance(2)
        assert peer_serial(url, ca.pem) == second.serial
        assert tls.reloads == 1


def test_unusable_files_fail_at_start_naming_the_file(ca, tmp_path):
    good = ca.issue("127.0.0.1", server=True)
    with pytest.raises(TLSFilesError, match=r"missing\.crt"):
        ServerTLS(tmp_path / "missing.crt", good.key)
    with pytest.raises(TLSFilesError, match="cannot use the TLS certificate"):
        ServerTLS(good.cert, ca.issue("other", server=True).key)  # key of another cert


# ------------------------------------------------------------------ notifiers


class MutualTLSReceiver:
    """An HTTPS webhook receiver that requires a client certificate from `client_ca`."""

    def __init__(self, cert: Issued, client_ca: Path) -> None:
        self.received: list[tuple[str, dict[str, Any], str | None]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                peer = self.connection.getpeercert()  # type: ignore[attr-defined]
                subject = dict(x[0] for x in peer["subject"]) if peer else {}
                outer.received.append((self.path, json.loads(body), subject.get("commonName")))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert.cert, cert.key)
        context.load_verify_locations(cafile=client_ca)
        context.verify_mode = ssl.CERT_REQUIRED
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.socket = context.wrap_socket(self.httpd.socket, server_side=True)
        self.url = f"https://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> MutualTLSReceiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def notification() -> Notification:
    incident = {"id": "INC-2025-0007", "service": "checkout", "severity": "SEV2"}
    return Notification(
        id="INC-2025-0007:triggered:hook:1",
        receiver="hook",
        event="triggered",
        dedup_key="INC-2025-0007",
        incident=incident,
        created_at=1_740_830_400.0,
        message="checkout/availability burned 2% of its 30d budget in 1h.",
        title="[SEV2] INC-2025-0007 checkout",
    )


def test_a_webhook_with_a_client_certificate_reaches_an_mtls_receiver(ca, tmp_path):
    receiver_cert = ca.issue("127.0.0.1", server=True)
    client_ca = TestCA(tmp_path, "east-west CA")
    ours = client_ca.issue("slo-engine", server=False)
    with MutualTLSReceiver(receiver_cert, client_ca.pem) as receiver:
        # Relative paths resolve against the config file's directory (base_dir).
        notifiers = build_notifiers(
            {
                "hook": {
                    "type": "webhook",
                    "url": f"{receiver.url}/hook",
                    "ca_file": ca.pem.name,
                    "cert_file": ours.cert.name,
                    "key_file": ours.key.name,
                },
                "no-cert": {"type": "webhook", "url": f"{receiver.url}/x", "ca_file": str(ca.pem)},
                "no-ca": {"type": "webhook", "url": f"{receiver.url}/y"},
            },
            base_dir=tmp_path,
        )
        notifiers["hook"].send(notification())
        ((path, body, peer),) = receiver.received
        assert path == "/hook" and body["incident"]["id"] == "INC-2025-0007"
        assert peer == "slo-engine"
        # Without the client certificate the receiver refuses the handshake; without the CA
        # bundle ours refuses the receiver's certificate. Both are retried, never ignored.
        for name in ("no-cert", "no-ca"):
            with pytest.raises(RetryableDeliveryError):
                notifiers[name].send(notification())
        assert len(receiver.received) == 1


def test_notifier_tls_files_are_checked_at_start(ca, tmp_path):
    with pytest.raises(ConfigError, match=r"missing\.crt"):
        build_notifiers(
            {
                "hook": {
                    "type": "webhook",
                    "url": "https://127.0.0.1:9/h",
                    "cert_file": "missing.crt",
                }
            },
            base_dir=tmp_path,
        )
    with pytest.raises(ValueError, match="key_file needs cert_file"):
        build_notifiers(
            {"hook": {"type": "webhook", "url": "https://127.0.0.1:9/h", "key_file": "k.pem"}},
            base_dir=tmp_path,
        )
