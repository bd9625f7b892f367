"""The exit codes of every `slo-engine` command: one table, so a CI job or cron wrapper can
branch on them the same way whatever the command (docs/cli.md lists which command returns
which).

A pipeline should treat anything but 0 as "stop": 2, 3 and 4 mean the answer is unknown,
not that everything is fine.
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0
    # The command ran and found something: invalid specs or input files, a closed release
    # gate, generated files out of date, no such incident.
    FINDINGS = 1
    # It was called wrongly: an unknown flag, a value that does not parse, a missing path,
    # flags that contradict each other. Click's own usage errors exit 2 too.
    USAGE = 2
    # The data source (Prometheus, the daemon's API, the store) could not be reached or
    # answered something that is not its API: there is no answer, not a "no".
    UNAVAILABLE = 3
    # A bug: an exception nobody expected. One line and "please report"; --debug or
    # SLO_ENGINE_DEBUG=1 shows the traceback.
    INTERNAL = 4
