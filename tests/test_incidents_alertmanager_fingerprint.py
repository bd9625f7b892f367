"""Our fingerprints equal what a real Alertmanager computes for the same labels."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import requests
from harness.incidents import make_alert
from harness.localam import ALERTMANAGER, local_alertmanager

from engine.alerting.alerts import fingerprint

pytestmark = [
    pytest.mark.alertmanager,
    pytest.mark.skipif(
        ALERTMANAGER is None,
        reason="Alertmanager binary not installed (Debian: prometheus-alertmanager)",
    ),
]


@pytest.fixture
def alertmanager(tmp_path):
    config = "route:\n  receiver: devnull\nreceivers:\n  - name: devnull\n"
    with local_alertmanager(config, tmp_path) as url:
        yield url


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
