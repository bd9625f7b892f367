"""TLS for requests to receivers: a CA bundle to verify a receiver with a private CA, and a
client certificate for receivers that require mTLS (east-west).

    post_json(url, body, timeout=10, tls=delivery_tls(config))   # None: the system's defaults

Contexts are cached per set of files and rebuilt when a file changes, so a rotated client
certificate is presented from the next request on, without a restart.
"""

from __future__ import annotations

import os
import ssl
import threading
from pathlib import Path
from typing import Any

from engine.notify.base import ConfigError, RetryableDeliveryError

_cache: dict[tuple[str, ...], tuple[tuple[int, ...], ssl.SSLContext]] = {}
_lock = threading.Lock()


def tls_files(config: Any) -> tuple[Path | None, Path | None, Path | None]:
    """(ca_file, cert_file, key_file) of a receiver's config."""
    return (
        getattr(config, "ca_file", None),
        getattr(config, "cert_file", None),
        getattr(config, "key_file", None),
    )


def client_tls(config: Any) -> ssl.SSLContext | None:
    """The context for `config`'s receiver, or None when it sets no TLS file."""
    ca_file, cert_file, key_file = tls_files(config)
    if ca_file is None and cert_file is None:
        return None
    files = tuple(str(p) for p in (ca_file, cert_file, key_file) if p is not None)
    key = (str(ca_file), str(cert_file), str(key_file))
    try:
        stamp = tuple(os.stat(p).st_mtime_ns for p in files)
    except OSError as exc:
        raise ConfigError(f"TLS file {exc.filename}: {exc.strerror}") from None
    with _lock:
        cached = _cache.get(key)
        if cached is not None and cached[0] == stamp:
            return cached[1]
        context = _build(ca_file, cert_file, key_file)
        _cache[key] = (stamp, context)
        return context


def _build(ca_file: Path | None, cert_file: Path | None, key_file: Path | None) -> ssl.SSLContext:
    # Verification stays on (hostname and chain): a CA bundle adds trust, it never removes it.
    context = ssl.create_default_context(cafile=None if ca_file is None else str(ca_file))
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        if cert_file is not None:
            context.load_cert_chain(cert_file, key_file)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(
            f"cannot use the client certificate {cert_file}"
            + (f" / key {key_file}" if key_file else "")
            + f": {getattr(exc, 'strerror', None) or exc}"
        ) from None
    return context


def delivery_tls(config: Any) -> ssl.SSLContext | None:
    """`client_tls` for a send: a certificate file that vanished or broke after start-up is
    retried (fixing the file lets the page go out) instead of dead-lettering a page."""
    try:
        return client_tls(config)
    except ConfigError as exc:
        raise RetryableDeliveryError(str(exc)) from None


def with_resolved_files(config: Any, base: Path) -> Any:
    """`config` with relative TLS paths resolved against `base` (the config file's directory)."""
    update = {
        name: base / path
        for name, path in zip(("ca_file", "cert_file", "key_file"), tls_files(config), strict=True)
        if path is not None and not path.is_absolute()
    }
    return config.model_copy(update=update) if update else config
