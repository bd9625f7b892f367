"""A throwaway PostgreSQL for tests: `initdb` into a temp directory, `postgres` on a free
127.0.0.1 port (unix socket inside the temp directory too), one database per test, stopped
with `pg_ctl stop` and deleted afterwards — the PostgreSQL twin of `engine.source.localprom`.

PostgreSQL refuses to run as root, and CI runs as root: then every server command runs as
the `postgres` system user (`runuser -u postgres --`) in a directory that user owns.

TCP connections need a password (scram-sha-256), as in production: the stores under test
log in as the role `slo` with the password in `password_file`. The harness itself
administers over the unix socket as the superuser (trust, only reachable inside the
temp directory).
"""

from __future__ import annotations

import contextlib
import itertools
import os
import pwd
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass
from glob import glob
from pathlib import Path
from typing import IO, Any

from engine.source.localprom import free_port

SERVER_BINARIES = ("initdb", "pg_ctl", "postgres")
INSTALL_HINT = "sudo apt-get install -y postgresql"
ROLE = "slo"
_SUPERUSER = "postgres"
# Durability is not under test here; speed is.
_SERVER_SETTINGS = ("-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off")


class LocalPostgreSQLError(RuntimeError):
    """initdb, pg_ctl or the server failed; the message carries their output."""


def server_bin_dir() -> Path | None:
    """A directory holding initdb, pg_ctl and postgres: PATH first, then the newest
    /usr/lib/postgresql/*/bin (Debian keeps the server binaries off PATH)."""
    found = shutil.which("pg_ctl")
    candidates = [Path(found).resolve().parent] if found else []
    versions = sorted(glob("/usr/lib/postgresql/*/bin"), key=_version_key, reverse=True)
    candidates += [Path(p) for p in versions]
    for directory in candidates:
        if all(os.access(directory / name, os.X_OK) for name in SERVER_BINARIES):
            return directory
    return None


def _version_key(path: str) -> tuple[int, ...]:
    version = Path(path).parent.name
    return tuple(int(p) for p in version.split(".") if p.isdigit())


def skip_reason() -> str | None:
    """Why real-PostgreSQL tests cannot run here (None when they can)."""
    try:
        import psycopg  # noqa: F401
    except ImportError:
        return "needs psycopg — pip install 'psycopg[binary]>=3.1,<4' 'psycopg-pool>=3.2,<4'"
    if server_bin_dir() is None:
        return f"needs the PostgreSQL server (initdb, pg_ctl, postgres) — {INSTALL_HINT}"
    if os.geteuid() == 0:
        if shutil.which("runuser") is None:
            return "running as root needs runuser (util-linux) to start PostgreSQL as postgres"
        try:
            pwd.getpwnam(_SUPERUSER)
        except KeyError:
            return f"running as root needs the postgres system user — {INSTALL_HINT}"
    return None


@dataclass(frozen=True)
class Database:
    """One database of the local server: connect with `dsn` plus `password_file`."""

    name: str
    dsn: str  # postgresql://slo@127.0.0.1:PORT/NAME — no password in it
    password_file: Path
    password: str

    @property
    def dsn_with_password(self) -> str:
        return self.dsn.replace(f"{ROLE}@", f"{ROLE}:{self.password}@", 1)


class LocalPostgreSQL:
    """A real PostgreSQL on 127.0.0.1; use as a context manager."""

    def __init__(self, ready_timeout: float = 60.0) -> None:
        self.ready_timeout = ready_timeout
        self.port: int | None = None
        self.password = secrets.token_urlsafe(18)
        self._bin = server_bin_dir()
        self._workdir: Path | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self._names = itertools.count(1)

    # ------------------------------------------------------------------ paths
    @property
    def workdir(self) -> Path:
        if self._workdir is None:
            raise LocalPostgreSQLError("not started")
        return self._workdir

    @property
    def data_dir(self) -> Path:
        return self.workdir / "data"

    @property
    def socket_dir(self) -> Path:
        return self.workdir / "socket"

    @property
    def log_path(self) -> Path:
        return self.workdir / "postgresql.log"

    @property
    def password_file(self) -> Path:
        return self.workdir / "slo.password"

    # ------------------------------------------------------------------ commands
    def _as_server_user(self, *args: str | Path) -> list[str]:
        """The command, run as the postgres system user when we are root."""
        if self._bin is None:
            raise LocalPostgreSQLError(f"PostgreSQL server binaries not found — {INSTALL_HINT}")
        cmd = [str(self._bin / str(args[0])), *map(str, args[1:])]
        return ["runuser", "-u", _SUPERUSER, "--", *cmd] if os.geteuid() == 0 else cmd

    def _run(self, *args: str | Path, timeout: float = 120.0) -> str:
        proc = subprocess.run(
            self._as_server_user(*args),
            capture_output=True,
            text=True,
            cwd=self.workdir,
            stdin=subprocess.DEVNULL,
            timeout=timeout,
            check=False,
        )
        if proc.returncode != 0:
            raise LocalPostgreSQLError(
                f"{args[0]} failed (exit {proc.returncode}):\n{proc.stderr or proc.stdout}"
                f"\n{self.log_tail()}"
            )
        return proc.stdout

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> LocalPostgreSQL:
        if self._workdir is not None:
            raise LocalPostgreSQLError("already started")
        # Not under pytest's tmp_path: its parents are root-only, the server user must reach it.
        self._workdir = Path(tempfile.mkdtemp(prefix="slo-engine-pg-"))
        try:
            self._init_cluster()
            self._launch_on_a_free_port()
            self._create_role()
        except BaseException:
            self.cleanup()
            raise
        return self

    def _init_cluster(self) -> None:
        self.socket_dir.mkdir()
        superuser_password = self.workdir / "superuser.password"
        superuser_password.write_text(secrets.token_urlsafe(18) + "\n")
        if os.geteuid() == 0:
            account = pwd.getpwnam(_SUPERUSER)
            for path in (self.workdir, self.socket_dir, superuser_password):
                os.chown(path, account.pw_uid, account.pw_gid)
        self._run(
            "initdb",
            "-D",
            self.data_dir,
            "-U",
            _SUPERUSER,
            f"--pwfile={superuser_password}",
            "--auth-local=trust",  # the socket lives in our own 0700 directory
            "--auth-host=scram-sha-256",
            "--encoding=UTF8",
            "--no-locale",
            "--no-sync",
        )

    def _launch_on_a_free_port(self) -> None:
        for attempt in range(3):
            self.port = free_port()
            try:
                self._launch()
                return
            except LocalPostgreSQLError as exc:
                # A port found free can be taken by a parallel test before we bind it.
                if "in use" not in str(exc) or attempt == 2:
                    raise

    def _launch(self) -> None:
        """The postmaster as our own child (not daemonized by `pg_ctl start`): a container's
        init may never reap an orphan, and stopping by our pid touches nothing else."""
        self._log = open(self.log_path, "ab")  # noqa: SIM115 — closed in stop()
        self._proc = subprocess.Popen(
            self._as_server_user(
                "postgres",
                "-D",
                self.data_dir,
                "-p",
                str(self.port),
                "-k",
                self.socket_dir,
                "-c",
                "listen_addresses=127.0.0.1",
                *_SERVER_SETTINGS,
            ),
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=self.workdir,
            start_new_session=True,  # a Ctrl-C in the terminal is pytest's, not the server's
        )
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise

    def _wait_ready(self) -> None:
        import psycopg

        deadline = time.monotonic() + self.ready_timeout
        while True:
            if self._proc is not None and self._proc.poll() is not None:
                raise LocalPostgreSQLError(
                    f"postgres exited with {self._proc.returncode}:\n{self.log_tail()}"
                )
            try:
                with self.admin():
                    return
            except psycopg.OperationalError as exc:
                if time.monotonic() > deadline:
                    raise LocalPostgreSQLError(
                        f"PostgreSQL not accepting connections: {exc}\n{self.log_tail()}"
                    ) from None
                time.sleep(0.1)

    @contextlib.contextmanager
    def admin(self, dbname: str = "postgres") -> Any:
        """A superuser connection (autocommit) over the unix socket."""
        import psycopg

        with psycopg.connect(
            host=str(self.socket_dir),
            port=self.port,
            user=_SUPERUSER,
            dbname=dbname,
            autocommit=True,
            connect_timeout=5,
        ) as conn:
            yield conn

    def _create_role(self) -> None:
        from psycopg import sql

        self.password_file.write_text(self.password + "\n")
        self.password_file.chmod(0o600)
        with self.admin() as conn:
            conn.execute(
                sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(
                    sql.Identifier(ROLE), sql.Literal(self.password)
                )
            )

    def create_database(self, name: str | None = None) -> Database:
        """A new, empty database owned by `slo`."""
        from psycopg import sql

        name = name or f"test_{next(self._names)}"
        with self.admin() as conn:
            conn.execute(
                sql.SQL("CREATE DATABASE {} OWNER {}").format(
                    sql.Identifier(name), sql.Identifier(ROLE)
                )
            )
        dsn = f"postgresql://{ROLE}@127.0.0.1:{self.port}/{name}"
        return Database(name, dsn, self.password_file, self.password)

    def drop_database(self, name: str) -> None:
        """Drop it, closing whatever sessions a test left open."""
        from psycopg import sql

        with self.admin() as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )

    def log_tail(self, lines: int = 30) -> str:
        if self._workdir is None or not self.log_path.exists():
            return "(no log)"
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def stop(self, timeout: float = 30.0) -> None:
        """`pg_ctl stop -m fast` (disconnect everyone, shut down cleanly), then reap our child;
        kill it if that fails. Idempotent. Keeps the directory."""
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            try:
                self._run(
                    "pg_ctl", "stop", "-D", self.data_dir, "-m", "fast", "-w", timeout=timeout
                )
                proc.wait(timeout=timeout)
            except (LocalPostgreSQLError, subprocess.TimeoutExpired):
                self._kill(proc, timeout)
        if self._log is not None:
            self._log.close()
            self._log = None

    def _kill(self, proc: subprocess.Popen[bytes], timeout: float) -> None:
        """Immediate shutdown by signal: SIGQUIT makes the postmaster stop and reap its
        backends; under root `proc` is runuser, which then reaps the postmaster. SIGKILL
        only if that hangs."""
        with contextlib.suppress(OSError, ValueError, IndexError):
            pid = int((self.data_dir / "postmaster.pid").read_text().split()[0])
            os.kill(pid, signal.SIGQUIT)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=timeout)

    def cleanup(self) -> None:
        """Stop and delete the data directory."""
        try:
            self.stop()
        finally:
            if self._workdir is not None:
                shutil.rmtree(self._workdir, ignore_errors=True)
                self._workdir = None

    def __enter__(self) -> LocalPostgreSQL:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.cleanup()
