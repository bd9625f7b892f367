"""The thaw notice on Slack: a budget-policy `resolved` notice says releases are unfrozen, in
the resolved colour — not in the freeze colour that made it read like one more freeze."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import pytest
from harness.api_runtime import evaluation, spec_documents, write_specs
from harness.incidents import T0

from engine.incidents.budget_policy import policy_notifications, thaw_notifications
from engine.notify.base import Secret, SlackConfig
from engine.notify.slack import COLOUR, RESOLVED_COLOUR, SlackNotifier, slack_body
from engine.spec.loader import load_specs

POLICY = {"thresholds": [{"consumed": 100, "action": "freeze", "receivers": ["chat"]}]}


def _slo(tmp_path: Path):
    documents = spec_documents()
    documents["api.yaml"]["budget_policy"] = POLICY
    specs = load_specs([write_specs(tmp_path / "specs", documents)]).slos
    return next(s for s in specs if s.id == "api/availability")


def test_a_thaw_is_green_and_titled_releases_unfrozen(tmp_path: Path) -> None:
    slo = _slo(tmp_path)
    (thaw,) = thaw_notifications([evaluation(slo, T0 + 120, budget=0.4)], {slo.id: T0}, T0 + 120)
    title = (
        "RELEASES UNFROZEN: [budget] api/availability: releases unfrozen — 60.0% of the error "
        "budget consumed, below the freeze at 100%"
    )
    assert slack_body(thaw) == {
        "text": title,
        "attachments": [
            {
                "fallback": title,
                "color": RESOLVED_COLOUR,
                "title": title,
                "text": (
                    "api/availability is back below its freeze threshold: releases of api are "
                    "no longer held by it (GET /api/v1/gates/api)."
                ),
                "fields": [
                    {"title": "Service", "value": "api", "short": True},
                    {"title": "SLO", "value": "api/availability", "short": True},
                    {"title": "Budget consumed", "value": "60.0 %", "short": True},
                    {"title": "Policy", "value": "freeze at 100 %", "short": True},
                ],
                "footer": "slo-engine · budget-policy:api/availability",
                "title_link": "https://runbooks.example.com/api/availability",
            }
        ],
    }


def test_the_freeze_itself_keeps_the_freeze_colour(tmp_path: Path) -> None:
    slo = _slo(tmp_path)
    (freeze,) = policy_notifications([evaluation(slo, T0, budget=-0.1)], T0)
    attachment = slack_body(freeze)["attachments"][0]
    assert attachment["color"] == COLOUR["SEV2"] != RESOLVED_COLOUR
    assert attachment["title"].startswith("BUDGET POLICY: [budget] api/availability: 110.0%")


class _Hook(BaseHTTPRequestHandler):
    received: ClassVar[list[dict]] = []

    def do_POST(self) -> None:
        length = int(self.headers["Content-Length"])
        type(self).received.append(json.loads(self.rfile.read(length)))
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args: object) -> None:  # keep test output quiet
        pass


@pytest.fixture
def hook() -> Iterator[tuple[str, list[dict]]]:
    received: ClassVar[list[dict]] = []
    handler = type("Hook", (_Hook,), {"received": received})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/services/T/B/x", received
    server.shutdown()
    server.server_close()


def test_the_thaw_reaches_the_webhook_as_rendered(tmp_path: Path, hook) -> None:
    url, received = hook
    secret = tmp_path / "slack-url"
    secret.write_text(url + "\n")
    slo = _slo(tmp_path)
    (thaw,) = thaw_notifications([evaluation(slo, T0 + 120, budget=0.4)], {slo.id: T0}, T0 + 120)
    config = SlackConfig(type="slack", webhook_url_file=secret)
    SlackNotifier("chat", config, Secret(secret, "Slack webhook URL")).send(thaw)
    assert received == [slack_body(thaw)]
    assert received[0]["attachments"][0]["color"] == RESOLVED_COLOUR
