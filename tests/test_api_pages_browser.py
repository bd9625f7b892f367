"""The API's pages in headless Chromium — Swagger UI at /docs and the status page — load
nothing from outside 127.0.0.1 and break no rule of their Content-Security-Policy.

Chromium is sent through a recording proxy (for loopback too: `<-loopback>`), so every
request the pages make is seen, wherever it would go; the proxy forwards only those for the
test's own server. CSP violations are what Chromium reports on its console ("Refused to
..."), read from its log on stderr. /docs must also really work: its scripts (served by
this daemon from the swagger-ui-bundle package) render the API's operations.
"""

from __future__ import annotations

import subprocess
import tempfile
import threading
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from harness.api_runtime import FakeClock, sample_runtime, serve
from harness.browser import FLAGS, MISSING, TIMEOUT, chromium_binary
from harness.incidents import T0

from engine.api.app import create_app
from engine.api.deps import Access

pytestmark = pytest.mark.browser


class RecordingProxy:
    """An HTTP proxy that records every request and forwards only those to `allowed`."""

    def __init__(self, allowed: str) -> None:
        self.seen: list[str] = []
        outer = self
        direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                outer.seen.append(self.path)
                if urlsplit(self.path).netloc != allowed:
                    self.send_error(403, "outside the test")
                    return
                request = urllib.request.Request(self.path, headers={"Accept": "*/*"})
                try:
                    with direct.open(request, timeout=10) as answer:
                        status, headers, body = answer.status, answer.headers, answer.read()
                except urllib.error.HTTPError as refused:
                    status, headers, body = refused.code, refused.headers, refused.read()
                self.send_response(status)
                for name, value in headers.items():
                    if name.lower() not in ("transfer-encoding", "connection", "content-length"):
                        self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_CONNECT(self) -> None:  # HTTPS anywhere: recorded, refused
                outer.seen.append(f"CONNECT {self.path}")
                self.send_error(403, "outside the test")

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.address = f"127.0.0.1:{self.httpd.server_address[1]}"

    @contextmanager
    def running(self) -> Iterator[RecordingProxy]:
        thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        thread.start()
        try:
            yield self
        finally:
            self.httpd.shutdown()
            self.httpd.server_close()


def load(url: str, proxy: RecordingProxy) -> tuple[str, str]:
    """(DOM after the page's scripts ran, Chromium's log) for `url` through `proxy`."""
    binary = chromium_binary()
    assert binary is not None
    with tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile:
        result = subprocess.run(
            [
                binary,
                *FLAGS,
                f"--user-data-dir={profile}",
                f"--proxy-server=http://{proxy.address}",
                "--proxy-bypass-list=<-loopback>",
                # Chromium's own traffic (clock sync, component updates, sign-in) is not the
                # page's: switched off so the proxy sees only what the page asks for.
                "--disable-features=NetworkTimeServiceQuerying,OptimizationHints,"
                "MediaRouter,AutofillServerCommunication",
                "--disable-extensions",
                "--disable-default-apps",
                "--disable-domain-reliability",
                "--disable-client-side-phishing-detection",
                "--no-pings",
                "--enable-logging=stderr",
                "--v=0",
                # Time for Swagger UI to fetch /openapi.json and render it.
                "--virtual-time-budget=15000",
                "--dump-dom",
                url,
            ],
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
            check=False,
        )
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout, result.stderr


@pytest.fixture
def server(tmp_path: Path) -> Iterator[str]:
    if chromium_binary() is None:
        pytest.skip(MISSING)
    runtime = sample_runtime(tmp_path, FakeClock(T0 + 600), T0)
    try:
        app = create_app(
            runtime, [], clock=runtime.clock, docs_page=True, access=Access(public_status_page=True)
        )
        with serve(app) as url:
            yield url
    finally:
        runtime.close()


# Chromium's own services (updates, sign-in), which it calls whatever the page, despite the
# flags above: never what a page loads — and refused by the proxy all the same.
BROWSER_SERVICES = frozenset({"update.googleapis.com:443", "accounts.google.com:443"})


def _host(seen: str) -> str:
    return seen.removeprefix("CONNECT ") if seen.startswith("CONNECT ") else urlsplit(seen).netloc


def _browser_own(seen: str) -> bool:
    return seen.startswith("CONNECT ") and _host(seen) in BROWSER_SERVICES


def csp_violations(log: str) -> list[str]:
    return [
        line
        for line in log.splitlines()
        if "Content Security Policy" in line or "Refused to" in line
    ]


@pytest.mark.parametrize("page", ["/docs", "/status"])
def test_pages_load_nothing_from_outside_and_break_no_csp_rule(server: str, page: str):
    netloc = urlsplit(server).netloc
    proxy = RecordingProxy(allowed=netloc)
    with proxy.running():
        dom, log = load(server + page, proxy)
    assert proxy.seen, "Chromium did not go through the recording proxy"
    outside = [seen for seen in proxy.seen if _host(seen) != netloc and not _browser_own(seen)]
    assert outside == [], "\n".join(outside)
    assert csp_violations(log) == []
    if page == "/docs":
        # Its scripts ran: Swagger UI fetched the OpenAPI document and rendered operations.
        assert f"http://{netloc}/openapi.json" in proxy.seen
        assert f"http://{netloc}/docs/assets/swagger-ui-bundle.js" in proxy.seen
        assert "opblock" in dom and "/api/v1/incidents/{incident_id}/ack" in dom
    else:
        assert "Service status" in dom and f"http://{netloc}/static/status.css" in proxy.seen
