"""Which incident store the `incidents` commands act on: the daemon's, spelled as it is.

- `--state-dir DIR` alone: the SQLite file the daemon keeps there (one daemon);
- `--store DSN`: the daemon's `store:` key — `postgresql://user@host:port/dbname` (several
  replicas share it; the password from `--store-password-file`, never a flag value) or
  `sqlite:PATH` (relative to `--state-dir`, like the daemon's).

Each flag is also read from `SLO_ENGINE_STATE_DIR`, `SLO_ENGINE_STORE` and
`SLO_ENGINE_STORE_PASSWORD_FILE` — the names `run` reads — so a shell in the daemon's
container needs no flags; a flag given wins over its variable. Only these three: the other
flags of `incidents` (`--config` is the incident config, not `run`'s daemon config) must not
be filled from a daemon's environment.

Unlike the daemon, the CLI never creates a store: a SQLite file that is not there is a wrong
path (exit 2), not a new, empty incident history.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.text import Text

from engine.commands.exit_codes import ExitCode
from engine.store.base import IncidentStore, StoreError
from engine.store.open import POSTGRESQL_PREFIXES, SQLITE_PREFIX, open_store
from engine.store.sqlite import DB_FILENAME, SQLiteStore

StateDir = Annotated[
    Path | None,
    typer.Option(
        "--state-dir",
        metavar="DIR",
        envvar="SLO_ENGINE_STATE_DIR",
        show_envvar=True,
        help="The daemon's state directory (holds incidents.sqlite3 unless --store says else).",
    ),
]
StoreDsn = Annotated[
    str | None,
    typer.Option(
        "--store",
        metavar="DSN",
        envvar="SLO_ENGINE_STORE",
        show_envvar=True,
        help="The daemon's store: postgresql://user@host:port/dbname or sqlite:PATH.",
    ),
]
StorePasswordFile = Annotated[
    Path | None,
    typer.Option(
        "--store-password-file",
        metavar="FILE",
        envvar="SLO_ENGINE_STORE_PASSWORD_FILE",
        show_envvar=True,
        help="File holding the PostgreSQL password (a secret: never a flag value).",
    ),
]


def fail(message: str, code: int) -> typer.Exit:
    Console(stderr=True, soft_wrap=True).print(Text(f"error: {message}", style="red"))
    return typer.Exit(code)


@dataclass(frozen=True)
class StoreAt:
    """Where the incidents are: the three flags as given."""

    state_dir: Path | None
    store: str | None = None
    password_file: Path | None = None

    @property
    def setting(self) -> str:
        return (self.store or "").strip()

    @property
    def postgresql(self) -> bool:
        return self.setting.startswith(POSTGRESQL_PREFIXES)

    def describe(self) -> str:
        """Where, for messages: never the DSN, which may hold a password."""
        if self.postgresql:
            return "the PostgreSQL store"
        return str(self.sqlite_file() or self.state_dir)

    def sqlite_file(self) -> Path | None:
        """The SQLite file meant, resolved as engine.store.open does; None without one."""
        path = self.setting.removeprefix(SQLITE_PREFIX)
        if path.startswith("//"):  # sqlite:///abs/path, the URL spelling
            path = path[2:]
        if not path:
            return None if self.state_dir is None else self.state_dir / DB_FILENAME
        file = Path(path).expanduser()
        return file if file.is_absolute() else (self.state_dir or Path(".")) / file

    def open(self) -> IncidentStore:
        """The store, opened; `typer.Exit` 2 for a wrong spelling, 3 when it cannot open."""
        if self.postgresql:
            if self.password_file is not None and not self.password_file.is_file():
                raise fail(
                    f"--store-password-file {self.password_file}: no such file",
                    ExitCode.USAGE,
                )
            return _opened(lambda: open_store(self.setting, Path("."), self.password_file))
        if self.password_file is not None:
            raise fail(
                "--store-password-file is only used with a postgresql:// --store",
                ExitCode.USAGE,
            )
        if self.setting and not self.setting.startswith(SQLITE_PREFIX):
            # The value is not echoed: a mistyped DSN may still carry a password.
            raise fail(
                "--store: use postgresql://user@host:port/dbname or sqlite:PATH",
                ExitCode.USAGE,
            )
        file = self.sqlite_file()
        if file is None:
            raise fail(
                "no incident store given: pass the daemon's --state-dir DIR, or its --store DSN",
                ExitCode.USAGE,
            )
        if not file.is_file():
            raise fail(
                f"{file}: no incident store here ({file.name} missing) — pass the --state-dir "
                "(or --store) the daemon runs with",
                ExitCode.USAGE,
            )
        return _opened(lambda: SQLiteStore(file))


def _opened(opener: Callable[[], IncidentStore]) -> IncidentStore:
    try:
        return opener()
    except StoreError as exc:
        raise fail(str(exc), ExitCode.UNAVAILABLE) from None
