"""Our fingerprints equal what a real Alertmanager computes for the same labels."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from datetime import UTC, datetime, timedelta

import pytest
import requests

from engine.incidents.alerts import fingerprint
from engine.incidents.testing import make_alert

BINARY = shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")
pytestmark = [
    pytest.mark.alertmanager,
    pytest.mark.skipif(
        BINARY is None, reason="Alertmanager binary not installed (Debian: prometheus-alertmanager)"
    ),
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def alertmanager(tmp_path):
    config = tmp_path / "alertmanager.yml"
    config.write_text("route:\n  receiver: devnull\nreceivers:\n  - name: devnull\n")
    port = _free_port()
    proc = subprocess.Popen(
        [
            BINARY,
            f"--config.file={config}",
            f"--storage.path={tmp_path / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--cluster.listen-address=",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):
            try:
                if requests.get(f"{url}/-/ready", timeout=1).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            time.sleep(0.1)
        else:
            pytest.fail("Alertmanager did not become ready")
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_fingerprints_match_a_real_alertmanager(alertmanager):
    label_sets = [
        make_alert().labels,
        make_alert(
            service="db", severity="ticket", labels={"team": "storage", "env": "prod"}
        ).labels,
        {"alertname": "Unicode", "service": "ümlaut-ß"},  # UTF-8 bytes are hashed
    ]
    now = datetime.now(tz=UTC)
    body = [
        {
            "labels": labels,
            "annotations": {"summary": "not part of identity"},
            "startsAt": now.isoformat(),
            "endsAt": (now + timedelta(hours=1)).isoformat(),
        }
        for labels in label_sets
    ]
    assert requests.post(f"{alertmanager}/api/v2/alerts", json=body, timeout=5).status_code == 200
    listed = requests.get(f"{alertmanager}/api/v2/alerts", timeout=5).json()
    theirs = {a["fingerprint"]: a["labels"] for a in listed}
    assert len(theirs) == len(label_sets)
    for labels in label_sets:
        assert theirs[fingerprint(labels)] == labels
