"""Which incident store a daemon or CLI uses, from one setting (`--store`):

- unset, or `sqlite:` → the SQLite file in the state directory (one replica; the default);
- `sqlite:PATH` → that SQLite file (relative paths are under the state directory);
- `postgresql://user@host:port/dbname` (or `postgres://`) → PostgreSQL, shared by several
  replicas; the password comes from `password_file` (or the DSN itself; never printed).
"""

from __future__ import annotations

import re
from pathlib import Path

from engine.store.base import IncidentStore, StoreError
from engine.store.sqlite import SQLiteStore

SQLITE_PREFIX = "sqlite:"
POSTGRESQL_PREFIXES = ("postgresql://", "postgres://")


def open_store(
    store: str | None, state_dir: Path | str, password_file: Path | str | None = None
) -> IncidentStore:
    """Open (and migrate) the store `store` names; `StoreError` for anything else."""
    setting = (store or "").strip()
    if not setting or setting.startswith(SQLITE_PREFIX):
        if password_file is not None:
            raise StoreError("a password file is only used with a postgresql:// store")
        return _sqlite(setting.removeprefix(SQLITE_PREFIX), Path(state_dir))
    if setting.startswith(POSTGRESQL_PREFIXES):
        # Imported here: SQLite users never load the PostgreSQL driver.
        from engine.store.postgresql import PostgreSQLStore

        return PostgreSQLStore(setting, password_file)
    # Only a scheme is echoed: the rest may hold a password.
    scheme = re.match(r"[A-Za-z][A-Za-z0-9+.-]*(?=:)", setting)
    raise StoreError(
        f"unknown incident store (scheme {scheme[0] if scheme else '(none)'!r}): use "
        "sqlite:PATH or "
        "postgresql://user@host:port/dbname"
    )


def _sqlite(path: str, state_dir: Path) -> SQLiteStore:
    if path.startswith("//"):  # sqlite:///abs/path, the URL spelling
        path = path[2:]
    if not path:
        return SQLiteStore.in_state_dir(state_dir)
    file = Path(path).expanduser()
    if not file.is_absolute():
        file = state_dir / file
    file.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    return SQLiteStore(file)
