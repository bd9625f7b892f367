"""TLS for the API's listener: TLS 1.2 or newer, optional client certificates (mTLS for
east-west callers), and certificates that follow their files.

    tls = ServerTLS(cert_file, key_file, client_ca_file)   # raises TLSFilesError if unusable
    config = server_config(app, tls=tls, ...)               # engine/api/server.py

Rotation without a restart: cert-manager, Vault or a cron job replace the files; every
handshake asks the listener context's SNI callback (called with or without SNI), which
looks at the files' modification times — at most once per `CHECK_EVERY_S` — and, when they
changed, hands the handshake a context built from the new files. A half-written or broken
pair is logged and the previous context keeps serving until the files are whole again.
"""

from __future__ import annotations

import logging
import os
import ssl
import threading
import time
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger("engine.api")

CHECK_EVERY_S = 1.0


class TLSFilesError(ValueError):
    """The certificate, key or client CA files cannot be used (the message says which)."""


class ServerTLS:
    def __init__(
        self,
        cert_file: Path | str,
        key_file: Path | str,
        client_ca_file: Path | str | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.cert_file, self.key_file = Path(cert_file), Path(key_file)
        self.client_ca_file = None if client_ca_file is None else Path(client_ca_file)
        self._clock = clock
        self._lock = threading.Lock()
        self._stamp = self._mtimes()
        self._current = self._build()
        self._checked_at = clock()
        # The context the listener is created with; handshakes may be moved to `_current`.
        self.listener = self._current
        self.reloads = 0

    @property
    def mutual(self) -> bool:
        return self.client_ca_file is not None

    def _files(self) -> list[Path]:
        return [p for p in (self.cert_file, self.key_file, self.client_ca_file) if p is not None]

    def _mtimes(self) -> tuple[int, ...]:
        try:
            return tuple(os.stat(p).st_mtime_ns for p in self._files())
        except OSError as exc:
            raise TLSFilesError(f"TLS file {exc.filename}: {exc.strerror}") from None

    def _build(self) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        try:
            context.load_cert_chain(self.cert_file, self.key_file)
            if self.client_ca_file is not None:
                context.load_verify_locations(cafile=self.client_ca_file)
                context.verify_mode = ssl.CERT_REQUIRED
        except (OSError, ssl.SSLError) as exc:
            raise TLSFilesError(
                f"cannot use the TLS certificate {self.cert_file} / key {self.key_file}"
                + (f" / client CA {self.client_ca_file}" if self.client_ca_file else "")
                + f": {getattr(exc, 'strerror', None) or exc}"
            ) from None
        context.sni_callback = self._on_handshake
        return context

    def current(self) -> ssl.SSLContext:
        """The context for a new handshake, rebuilt when the files changed."""
        with self._lock:
            now = self._clock()
            if now - self._checked_at < CHECK_EVERY_S:
                return self._current
            self._checked_at = now
            try:
                stamp = self._mtimes()
                if stamp != self._stamp:
                    self._current, self._stamp = self._build(), stamp
                    self.reloads += 1
                    log.info("TLS certificate reloaded from %s", self.cert_file)
            except TLSFilesError as exc:
                log.error("%s; still serving the previous certificate", exc)
            return self._current

    def _on_handshake(
        self, connection: ssl.SSLObject, server_name: str | None, context: ssl.SSLContext
    ) -> None:
        current = self.current()
        if current is not context:
            connection.context = current
