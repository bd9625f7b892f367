"""The configuration's secret and certificate files, checked before the daemon starts.

Why at start: the files are read when a query is sent, so a missing `bearer_token_file`
would otherwise start a daemon that is blind from its first cycle and only says so on
/readyz. `slo-engine run` refuses to start instead (exit 2), naming the key and the file.
Receivers' secret files are checked where the receivers are built (engine/notify/factory.py)
and the API token file where it is read (engine/api/security.py).
"""

from __future__ import annotations

import os
from pathlib import Path

from engine.daemon.config import PROMETHEUS_URL_DATASOURCE, DaemonConfig


def missing_secret_files(config: DaemonConfig) -> list[str]:
    """One line per configured secret or certificate file that cannot be read:
    `key: path does not exist — fix`."""
    problems: list[str] = []
    for name, datasource in config.all_datasources().items():
        where = "" if name == PROMETHEUS_URL_DATASOURCE else f"datasources.{name}."
        # The files it reads at run time, by the key naming them (tls_config.ca_file, ...).
        for key, path in datasource.secret_files().items():
            if (why := _unreadable(Path(path))) is not None:
                problems.append(f"{where}{key}: {path} {why}")
    headers = config.telemetry.headers_file
    if headers is not None and (why := _unreadable(Path(headers))) is not None:
        problems.append(f"telemetry.headers_file: {headers} {why}")
    return problems


def _unreadable(path: Path) -> str | None:
    """Why `path` cannot be read as a file, or None when it can."""
    if not path.exists():
        return "does not exist — create it (the secret on one line, mode 0600) or fix the path"
    if not path.is_file():
        return "is not a file — point the key at the file holding the secret"
    if not os.access(path, os.R_OK):
        return "is not readable by this user — fix its owner or mode"
    return None
