"""Receivers that misbehave on purpose, on 127.0.0.1: one that drips its answer one byte at a
time, one that accepts and never answers. Both read the whole request first (so each
attempt is recorded with its Idempotency-Key) and can be switched to answer at once.

    with StallingReceiver("drip", every=2.0) as slow:
        ... notifier url: slow.url ...
        slow.healthy = True   # from now on: 202 at once
"""

from __future__ import annotations

import socket
import threading
import time
from typing import Literal

_ANSWER = b"HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"


class StallingReceiver:
    def __init__(self, mode: Literal["drip", "hang"], every: float = 2.0) -> None:
        self.mode = mode
        self.every = every
        self.healthy = False
        self.keys: list[str] = []  # Idempotency-Key of every request, in order
        self.answered = 0  # requests answered completely (accepted)
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self._server = socket.create_server(("127.0.0.1", 0))
        self._connections: list[socket.socket] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.getsockname()[1]}/hook"

    def __enter__(self) -> StallingReceiver:
        threading.Thread(target=self._accept, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._closed.set()
        self._server.close()
        with self._lock:
            for connection in self._connections:
                connection.close()

    def attempts(self) -> int:
        with self._lock:
            return len(self.keys)

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                connection, _ = self._server.accept()
            except OSError:
                return
            with self._lock:
                self._connections.append(connection)
            threading.Thread(target=self._serve, args=(connection,), daemon=True).start()

    def _serve(self, connection: socket.socket) -> None:
        try:
            key = _read_request(connection)
            with self._lock:
                self.keys.append(key)
            if self.healthy:
                with self._lock:  # counted first: the client may read it before we return
                    self.answered += 1
                connection.sendall(_ANSWER)
            elif self.mode == "hang":
                self._closed.wait()
            else:
                for byte in _ANSWER:
                    if self._closed.wait(self.every):
                        return
                    connection.sendall(bytes([byte]))
                with self._lock:
                    self.answered += 1
        except OSError:
            pass  # the client gave up (its deadline): that is the point
        finally:
            connection.close()


def _read_request(connection: socket.socket) -> str:
    """Read one HTTP request (headers + Content-Length body); its Idempotency-Key."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = connection.recv(65536)
        if not chunk:
            raise OSError("closed before the request ended")
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    headers = {}
    for line in head.decode("latin-1").split("\r\n")[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", "0"))
    while len(body) < length:
        chunk = connection.recv(65536)
        if not chunk:
            break
        body += chunk
    return headers.get("idempotency-key", "")


def wait_until(condition, timeout: float, what: str):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")
