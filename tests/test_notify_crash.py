"""Crash/restart: the outbox turns a process killed at the worst moment into a delay or a
duplicate delivery with the same dedup_key — never a lost page, never a second incident.

Each scenario runs the daemon's steps (engine → store.apply → deliverer) in a child
process that kills itself with SIGKILL at the chosen point; the test then "restarts" by
opening the same SQLite file and running the same steps, against a real local receiver.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from harness.incidents import T0, make_alert
from test_notify_receiver import receiver_fixture  # noqa: F401

from engine.incidents.config import IncidentConfig
from engine.incidents.engine import IncidentEngine
from engine.notify.delivery import Deliverer
from engine.notify.factory import build_notifiers
from engine.store.sqlite import SQLiteStore

ROOT = Path(__file__).resolve().parents[1]
ROUTING_KEY = "crash-test-routing-key-0123456789"

# The daemon's cycle up to the crash point: observe one outage alert at T0, persist the
# decision (incident + outbox row in one transaction), then deliver — or die on the way.
CHILD = textwrap.dedent(
    """
    import json, os, signal, sys
    from engine.incidents.config import IncidentConfig
    from engine.incidents.engine import IncidentEngine
    from harness.incidents import T0, make_alert
    from engine.notify.factory import build_notifiers
    from engine.notify.delivery import Deliverer
    from engine.store.sqlite import SQLiteStore

    db, notifier_config, crash_at = sys.argv[1:4]
    store = SQLiteStore(db)
    engine = IncidentEngine(IncidentConfig(receivers=[{"name": "oncall"}]), store.load_state())
    store.apply(engine.observe(T0, [make_alert(short_error_ratio=1.0)]))
    if crash_at == "after_outbox_write":
        os.kill(os.getpid(), signal.SIGKILL)

    class DieBeforeMarkingSent:
        def __init__(self, outbox):
            self.outbox = outbox
        def due(self, now, limit=100):
            return self.outbox.due(now, limit)
        def mark_sent(self, item_id, now):
            os.kill(os.getpid(), signal.SIGKILL)  # the request went out; the commit never happens
        def mark_failed(self, *args):
            self.outbox.mark_failed(*args)
        def counts(self):
            return self.outbox.counts()

    notifiers = build_notifiers({"oncall": json.loads(notifier_config)})
    Deliverer(DieBeforeMarkingSent(store), notifiers, clock=lambda: T0 + 1).run_once()
    raise SystemExit("the child should have been killed")
    """
)


def run_child(db: Path, notifier: dict, crash_at: str) -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "tests")])}
    result = subprocess.run(
        [sys.executable, "-c", CHILD, str(db), json.dumps(notifier), crash_at],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == -signal.SIGKILL, result.stderr


def pagerduty(tmp_path: Path, url: str) -> dict:
    path = tmp_path / "pd.key"
    path.write_text(ROUTING_KEY)
    path.chmod(0o600)
    return {"type": "pagerduty", "routing_key_file": str(path), "url": url}


def webhook(_tmp_path: Path, url: str) -> dict:
    return {"type": "webhook", "url": url}


def restart(db: Path, notifier: dict):
    """A fresh process' view: the same file, a new engine from the stored state."""
    store = SQLiteStore(db)
    engine = IncidentEngine(IncidentConfig(receivers=[{"name": "oncall"}]), store.load_state())
    notifiers = build_notifiers({"oncall": notifier})
    return store, engine, Deliverer(store, notifiers, clock=lambda: T0 + 120)


def test_killed_between_outbox_write_and_send_delivers_after_restart(tmp_path, receiver) -> None:
    r = receiver()
    db = tmp_path / "incidents.sqlite3"
    notifier = pagerduty(tmp_path, r.url)
    run_child(db, notifier, "after_outbox_write")
    assert r.requests == []  # died before sending anything

    store, _, deliverer = restart(db, notifier)
    try:
        assert store.counts() == {"pending": 1, "sent": 0, "dead": 0}
        assert deliverer.run_once().sent == 1
        (page,) = r.accepted
        assert page.json()["event_action"] == "trigger"
        assert page.json()["dedup_key"] == "INC-2024-0001"
        assert store.counts() == {"pending": 0, "sent": 1, "dead": 0}
        assert deliverer.run_once().attempted == 0
        assert len(r.requests) == 1
    finally:
        store.close()


@pytest.mark.parametrize("kind", [pagerduty, webhook], ids=["pagerduty", "webhook"])
def test_killed_between_send_and_mark_sent_resends_same_dedup_key_and_opens_nothing_new(
    tmp_path, receiver, kind
) -> None:
    r = receiver()
    db = tmp_path / "incidents.sqlite3"
    notifier = kind(tmp_path, r.url)
    run_child(db, notifier, "after_send")
    (first,) = r.accepted  # the page did go out before the crash

    store, engine, deliverer = restart(db, notifier)
    try:
        assert store.counts() == {"pending": 1, "sent": 0, "dead": 0}
        assert deliverer.run_once().sent == 1
        first_body, second_body = first.json(), r.accepted[1].json()
        # At-least-once: the same event again, byte for byte, so PagerDuty folds it into
        # the alert it already has (same dedup_key = incident id) and a webhook receiver
        # sees the same Idempotency-Key.
        assert second_body == first_body
        assert second_body["dedup_key"] == "INC-2024-0001"
        second = r.accepted[1]
        assert second.headers.get("idempotency-key") == first.headers.get("idempotency-key")
        assert store.counts() == {"pending": 0, "sent": 1, "dead": 0}

        # The alert is still firing after the restart: it joins the stored incident.
        decision = engine.observe(T0 + 180, [make_alert(short_error_ratio=1.0)])
        assert decision.notifications == []
        assert [
            i.id for i in decision.incidents if i.timeline and i.timeline[-1].kind == "opened"
        ] == []
        store.apply(decision)
        assert [i.id for i in store.list_incidents()] == ["INC-2024-0001"]
        assert store.counts() == {"pending": 0, "sent": 1, "dead": 0}
        assert deliverer.run_once().attempted == 0
        assert len({q.json()["dedup_key"] for q in r.accepted}) == 1
    finally:
        store.close()


def test_reapplying_a_decision_after_a_crash_enqueues_nothing_new(tmp_path) -> None:
    """If the daemon dies after commit but before it learns of the commit, it recomputes
    from the stored state; the deterministic notification ids make that harmless."""
    db = tmp_path / "incidents.sqlite3"
    store = SQLiteStore(db)
    config = IncidentConfig(receivers=[{"name": "oncall"}])
    decision = IncidentEngine(config, store.load_state()).observe(T0, [make_alert()])
    store.apply(decision)
    store.close()

    store = SQLiteStore(db)
    try:
        again = IncidentEngine(config, store.load_state()).observe(T0, [make_alert()])
        store.apply(again)
        assert again.notifications == []
        assert store.counts() == {"pending": 1, "sent": 0, "dead": 0}
        assert len(store.list_incidents()) == 1
    finally:
        store.close()
