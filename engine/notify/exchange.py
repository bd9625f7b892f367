"""One HTTP request and its whole response under a hard deadline.

    response = Exchange(request, timeout=10).run()   # HttpResponse, any status

urllib's `timeout` is a socket timeout: it bounds each connect and each read, and restarts
with every byte. A receiver that sends one byte every few seconds — or never finishes its
headers — keeps such a request alive indefinitely. Here the exchange (DNS, connect, TLS,
send, status line, headers, body) runs in a short-lived daemon thread; the caller waits at
most `timeout` seconds for it. At the deadline the caller gets `ExchangeTimeout` and the
connection's socket is shut down, so the blocked read fails at once and the thread ends
(one still resolving a name ends when the resolver gives up; it holds no connection).

Any HTTP status is a response here (urllib's HTTPError is read like a 2xx), so its body is
read within the same deadline; the caller classifies it. Bodies are read up to
`MAX_BODY_BYTES`: the notifiers need an excerpt for error messages, never more.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import socket
import ssl
import threading
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

MAX_BODY_BYTES = 256 * 1024
_CHUNK = 16 * 1024


@dataclass(frozen=True)
class HttpResponse:
    status: int
    headers: Mapping[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body.decode("utf-8"))


class ExchangeTimeout(Exception):
    """The whole exchange did not finish within its deadline; the connection was cut."""


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """A redirected POST loses its body in urllib; a receiver URL that redirects is a
    configuration error the operator must fix, not something to follow silently."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):  # type: ignore[no-untyped-def]
        return None


ConnectionFactory = Callable[..., http.client.HTTPConnection]


class _HTTPHandler(urllib.request.HTTPHandler):
    """urllib's handler, with connections made by `track` so the exchange can cut them."""

    def __init__(self, track: Callable[[type[http.client.HTTPConnection]], ConnectionFactory]):
        super().__init__()
        self._track = track

    def http_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        return self.do_open(self._track(http.client.HTTPConnection), req)


class _HTTPSHandler(urllib.request.HTTPSHandler):
    def __init__(
        self,
        track: Callable[[type[http.client.HTTPConnection]], ConnectionFactory],
        context: ssl.SSLContext | None = None,
    ):
        super().__init__(context=context)
        self._track = track

    def https_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        return self.do_open(
            self._track(http.client.HTTPSConnection),
            req,
            context=self._context,  # type: ignore[attr-defined]
        )


class Exchange:
    """One request/response; `run()` once."""

    def __init__(
        self,
        request: urllib.request.Request,
        timeout: float,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self._request = request
        self._timeout = timeout
        # A CA bundle and/or client certificate for HTTPS (None: the system's defaults).
        self._tls = tls
        self._lock = threading.Lock()
        self._connections: list[http.client.HTTPConnection] = []
        self._cut = False
        self._done = threading.Event()
        self._response: HttpResponse | None = None
        self._error: BaseException | None = None

    def run(self) -> HttpResponse:
        """The response (any status), or what urllib raised; `ExchangeTimeout` at the
        deadline."""
        worker = threading.Thread(target=self._exchange, name="notify-http", daemon=True)
        worker.start()
        if not self._done.wait(self._timeout):
            self._cut_connections()
            raise ExchangeTimeout(f"no complete response within {self._timeout:g}s")
        if self._error is not None:
            raise self._error
        assert self._response is not None
        return self._response

    # -- the worker thread ----------------------------------------------------------------

    def _exchange(self) -> None:
        opener = urllib.request.build_opener(
            _NoRedirect, _HTTPHandler(self._tracked), _HTTPSHandler(self._tracked, self._tls)
        )
        try:
            # The socket timeout still applies per operation: a thread stuck in one read
            # never outlives the deadline by more than that.
            try:
                with opener.open(self._request, timeout=self._timeout) as response:
                    body = _read_capped(response)
                    self._response = HttpResponse(
                        response.status, dict(response.headers.items()), body
                    )
            except urllib.error.HTTPError as refused:
                # A status the caller classifies; its body only serves the error message.
                with refused:
                    try:
                        body = _read_capped(refused)
                    except OSError:
                        body = b""
                headers = dict(refused.headers.items()) if refused.headers else {}
                self._response = HttpResponse(refused.code, headers, body)
        except BaseException as exc:  # handed to the caller, raised there
            self._error = exc
        finally:
            self._done.set()

    def _tracked(self, cls: type[http.client.HTTPConnection]) -> ConnectionFactory:
        def connect(host: str, **kwargs: Any) -> http.client.HTTPConnection:
            connection = cls(host, **kwargs)
            with self._lock:
                self._connections.append(connection)
                cut = self._cut
            if cut:  # the deadline passed before the connection even existed
                raise TimeoutError("deadline passed")
            return connection

        return connect

    def _cut_connections(self) -> None:
        with self._lock:
            self._cut = True
            connections = list(self._connections)
        for connection in connections:
            sock = connection.sock
            if sock is None:
                continue
            # The plain socket's shutdown, also for TLS: it wakes a reader blocked in another
            # thread without touching the SSL object that reader is using.
            with contextlib.suppress(OSError):
                socket.socket.shutdown(sock, socket.SHUT_RDWR)


def _read_capped(response: Any) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while size < MAX_BODY_BYTES:
        chunk = response.read(min(_CHUNK, MAX_BODY_BYTES - size))
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)
