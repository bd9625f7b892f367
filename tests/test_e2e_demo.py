"""`make demo` (python -m engine.demo) run non-interactively: it must page within its budget,
print the table, the incident and where things are, exit 0, and leave nothing running."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import requests

pytestmark = [pytest.mark.prometheus, pytest.mark.slow]

ROOT = Path(__file__).resolve().parent.parent


def test_demo_pages_and_cleans_up() -> None:
    if shutil.which("prometheus") is None or shutil.which("promtool") is None:
        pytest.skip("needs the prometheus and promtool binaries (apt-get install prometheus)")
    result = subprocess.run(
        [sys.executable, "-m", "engine.demo"],
        cwd=ROOT,
        env={**os.environ, "DEMO_DURATION": "150"},
        capture_output=True,
        text=True,
        timeout=400,
    )
    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    assert "SLOs (from GET /api/v1/slos)" in out
    page = re.search(r"webhook ← triggered\s+(INC-\d{4}-\d{4}) (SEV[12]) api: ", out)
    assert page, out
    assert re.search(r"paged \d+s since the demo started", out), out
    assert re.search(rf"{page.group(1)} SEV[12] api — api/availability", out)
    for where in ("status page", "/api/v1/incidents", "generated rules:", "dashboards"):
        assert where in out
    assert "stopped everything the demo started." in out

    # Nothing it started still answers.
    urls = re.findall(r"(http://127\.0\.0\.1:\d+)/(?:metrics|alerts|status)", out)
    assert len(set(urls)) >= 3
    for url in set(urls):
        with pytest.raises(requests.ConnectionError):
            requests.get(url, timeout=2)
    work = re.search(r"working directory (\S+)", out)
    assert work and not Path(work.group(1)).exists()
