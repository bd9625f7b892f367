"""How the daemon authenticates to a Prometheus-API backend, spelled as Prometheus spells it.

Prometheus' own scrape and remote-read configs carry `authorization:`, `basic_auth:` and
`tls_config:` blocks; an operator who has written those reads these the same way. Two
differences, both on purpose: secrets only from files (`credentials:` and `password:` are
refused, with the `*_file` key to use instead), and only what the HTTP client here can do
(no `*_ref`, `username_file`, TLS version bounds — refused by name, never ignored).

The flat keys of earlier versions (`bearer_token_file`, `basic_auth_user`, ...) are still
read: `fold_legacy_keys` moves each into its block before validation, and a file giving one
setting both ways is refused, since either choice could be the wrong one.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, field_validator, model_validator

from engine.spec.yaml_lines import Mark, locate

# Old flat key → (block, key in the block).
LEGACY_KEYS: dict[str, tuple[str, str]] = {
    "bearer_token_file": ("authorization", "credentials_file"),
    "basic_auth_user": ("basic_auth", "username"),
    "basic_auth_password_file": ("basic_auth", "password_file"),
    "ca_bundle": ("tls_config", "ca_file"),
    "client_cert": ("tls_config", "cert_file"),
    "client_key": ("tls_config", "key_file"),
}
# Keys of each block holding paths (resolved against the config file's directory).
BLOCK_PATH_KEYS: dict[str, tuple[str, ...]] = {
    "authorization": ("credentials_file",),
    "basic_auth": ("password_file",),
    "tls_config": ("ca_file", "cert_file", "key_file"),
}
# Prometheus keys refused here, with what to write instead.
_INLINE = "secrets are read from files only, never from the config"
REFUSED_KEYS: dict[tuple[str, str], str] = {
    ("authorization", "credentials"): f"{_INLINE} — put it in a file and set credentials_file",
    ("basic_auth", "password"): f"{_INLINE} — put it in a file and set password_file",
    ("tls_config", "key"): f"{_INLINE} — put the key in a file and set key_file",
    ("tls_config", "ca"): "inline certificates are not read — set ca_file",
    ("tls_config", "cert"): "inline certificates are not read — set cert_file",
    ("basic_auth", "username_file"): "not supported here — set username",
    ("tls_config", "min_version"): "not supported here — the TLS library's defaults apply",
    ("tls_config", "max_version"): "not supported here — the TLS library's defaults apply",
    # Prometheus' references into its secret store: here the secret store is the file system.
    **{
        (block, f"{name}_ref"): f"not supported here — set {instead}"
        for block, name, instead in (
            ("authorization", "credentials", "credentials_file"),
            ("basic_auth", "password", "password_file"),
            ("basic_auth", "username", "username"),
            ("tls_config", "ca", "ca_file"),
            ("tls_config", "cert", "cert_file"),
            ("tls_config", "key", "key_file"),
        )
    },
}
# An RFC 9110 token: the scheme word of an Authorization header.
_SCHEME = re.compile(r"^[A-Za-z0-9!#$%&'*+.^_`|~-]+$")


class _Block(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Authorization(_Block):
    """`Authorization: <type> <the file's content>` on every request."""

    type: str = "Bearer"
    # Optional only so that an inline `credentials:` gets the one error that matters.
    credentials_file: Path | None = None

    @model_validator(mode="after")
    def _needs_file(self) -> Authorization:
        if self.credentials_file is None:
            raise ValueError("authorization needs credentials_file — the file holding the token")
        return self

    @field_validator("type")
    @classmethod
    def _scheme(cls, value: str) -> str:
        if value.lower() == "basic":
            raise ValueError("type Basic — use the basic_auth block (username, password_file)")
        if not _SCHEME.match(value):
            raise ValueError(f"type {value!r} is not an HTTP auth scheme — e.g. Bearer")
        return value


class BasicAuth(_Block):
    username: str
    password_file: Path | None = None


class TLSConfig(_Block):
    """How the backend's certificate is checked, and the client certificate (mTLS)."""

    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    # The name the certificate must carry (and sent as SNI) when it is not the URL's host.
    server_name: str | None = None
    insecure_skip_verify: bool = False

    @model_validator(mode="after")
    def _pairs(self) -> TLSConfig:
        if self.key_file is not None and self.cert_file is None:
            raise ValueError("tls_config.key_file needs tls_config.cert_file")
        if self.insecure_skip_verify and (self.ca_file is not None or self.server_name):
            raise ValueError(
                "tls_config.insecure_skip_verify turns verification off, so ca_file and "
                "server_name would do nothing — drop one or the other"
            )
        return self


def fold_legacy_keys(data: Mapping[str, Any]) -> dict[str, Any]:
    """`data` with each old flat key moved into its block (a copy; `data` is untouched).

    ValueError when a setting is given both ways, naming both keys."""
    out = dict(data)
    for old, (block, key) in LEGACY_KEYS.items():
        if old not in out:
            continue
        value = out.pop(old)
        if value is None:
            continue
        section = out.get(block)
        if section is None:
            section = {}
        if not isinstance(section, Mapping):
            continue  # the block's own validation says what is wrong with it
        if key in section:
            raise ValueError(
                f"{old} and {block}.{key} are the same setting — keep {block}.{key} "
                f"({old} is its old spelling)"
            )
        out[block] = {**section, key: value}
    # Said in the old names, which are the ones the file has.
    for old, needs in (
        ("basic_auth_password_file", "basic_auth_user"),
        ("client_key", "client_cert"),
    ):
        block, key = LEGACY_KEYS[needs]
        if data.get(old) is not None and not (out.get(block) or {}).get(key):
            raise ValueError(f"{old} needs {needs}")
    return out


def apply_flag_overrides(data: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """`data` (the file) under `overrides` (flags and env vars). A flag with an old flat
    name (`--bearer-token-file`) sets the key in its block, so it wins over the file's block
    entry or old key for the same setting instead of clashing with it."""
    out = dict(data)
    for name, value in overrides.items():
        if name not in LEGACY_KEYS:
            out[name] = value
            continue
        block, key = LEGACY_KEYS[name]
        out.pop(name, None)
        section = out.get(block)
        out[block] = {**(section if isinstance(section, Mapping) else {}), key: value}
    return out


def resolve_block_paths(entry: Mapping[str, Any], resolve: Callable[[Any], Any]) -> dict[str, Any]:
    """`entry` (the top level or one datasource) with the blocks' file keys resolved."""
    out = dict(entry)
    for block, keys in BLOCK_PATH_KEYS.items():
        section = out.get(block)
        if isinstance(section, Mapping):
            out[block] = {k: resolve(v) if k in keys else v for k, v in section.items()}
    return out


def legacy_key_notes(data: Mapping[str, Any], root: Any, name: str) -> list[str]:
    """One warning per old flat key the file `name` uses, at its first place in `root`
    (the marked YAML), naming the new key: still read, but on the way out."""
    notes = []
    for old, places in legacy_keys_used(data).items():
        block, key = LEGACY_KEYS[old]
        mark = locate(root, (*places[0], old), at_key=True, default=Mark(1, 1))
        more = f" (and {len(places) - 1} more place(s))" if len(places) > 1 else ""
        notes.append(
            f"{name}:{mark.line}:{mark.column}: {old} is deprecated{more} — write "
            f"{block}: {{{key}: ...}} instead, as Prometheus does"
        )
    return notes


def legacy_keys_used(data: Mapping[str, Any]) -> dict[str, list[tuple[str, ...]]]:
    """Old flat key → the places (`()` the top level, `("datasources", name)`) using it."""
    used: dict[str, list[tuple[str, ...]]] = {}
    entries: list[tuple[tuple[str, ...], Any]] = [((), data)]
    datasources = data.get("datasources")
    if isinstance(datasources, Mapping):
        entries += [(("datasources", str(n)), ds) for n, ds in datasources.items()]
    for place, entry in entries:
        if isinstance(entry, Mapping):
            for old in LEGACY_KEYS:
                if entry.get(old) is not None:
                    used.setdefault(old, []).append(place)
    return used


def refused_key_hint(loc: tuple[str, ...]) -> str | None:
    """The message for a refused Prometheus key at `loc` (an unknown key there), if any."""
    if len(loc) < 2:
        return None
    return REFUSED_KEYS.get((loc[-2], loc[-1]))
