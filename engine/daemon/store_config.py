"""The daemon's store keys: where incidents live, and this replica's name among several.

    store: postgresql://slo@db:5432/slo      # unset: SQLite in state_dir (one daemon)
    store_password_file: /run/secrets/pg     # the password, never in the DSN or the file
    replica_id: slo-engine-0                 # default: hostname-pid-random

Kept apart from engine/daemon/config.py (which inherits these keys) so the replica settings
read as one thing. Several replicas need a PostgreSQL store; with SQLite one daemon owns
the file, so a replica name there would mean nothing and is refused.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, model_validator

from engine.store.open import POSTGRESQL_PREFIXES, SQLITE_PREFIX

REPLICA_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$"


class StoreSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    # Incidents, silences, the outbox: SQLite in state_dir when unset (or `sqlite:PATH`);
    # `postgresql://user@host:port/dbname` to run several replicas on one database.
    store: str | None = None
    store_password_file: Path | None = None
    replica_id: str | None = Field(default=None, pattern=REPLICA_ID_PATTERN)

    @property
    def shared_store(self) -> bool:
        """A PostgreSQL store: this daemon is one replica of possibly several."""
        return (self.store or "").strip().startswith(POSTGRESQL_PREFIXES)

    @model_validator(mode="after")
    def _store_keys(self) -> StoreSettings:
        setting = (self.store or "").strip()
        if setting and not self.shared_store and not setting.startswith(SQLITE_PREFIX):
            raise ValueError(
                "store must be sqlite:PATH or postgresql://user@host:port/dbname — "
                "leave it unset for SQLite in state_dir"
            )
        if not self.shared_store:
            if self.store_password_file is not None:
                raise ValueError(
                    "store_password_file is only used with a postgresql:// store — remove it"
                )
            if self.replica_id is not None:
                raise ValueError(
                    "replica_id needs a postgresql:// store (one SQLite file serves one "
                    "daemon) — remove it or set store:"
                )
        return self
