"""Budget-policy notices at the receivers (issue 14 item 5): a real Alertmanager lists them
under their own alert name with the SLO, threshold and action as labels (a rate-limit
summary keeps its name), and Slack, PagerDuty and the generic webhook render them as
notices, not as incidents. The notices are the daemon's own (`policy_notifications`)."""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import replace
from datetime import datetime
from pathlib import Path

import pytest
from harness.api_runtime import evaluation
from harness.localam import ALERTMANAGER, SKIP_REASON, local_alertmanager

from engine.incidents.budget_policy import policy_notifications
from engine.incidents.incident import Notification
from engine.notify.alertmanager import (
    BUDGET_POLICY_ALERTNAME,
    SUPPRESSED_ALERTNAME,
    AlertmanagerNotifier,
)
from engine.notify.factory import parse_notifier_configs
from engine.notify.pagerduty import event_body
from engine.notify.slack import slack_body
from engine.notify.webhook import webhook_body
from engine.spec.loader import load_specs

SPEC = """\
apiVersion: slo-engine/v1
service: api
slos:
  - name: availability
    objective: 99.9
    period: 30d
    sli:
      events:
        bad: sum(rate(http_requests_total{job="api",code=~"5.."}[{{window}}]))
        total: sum(rate(http_requests_total{job="api"}[{{window}}]))
    alerting:
      runbook_url: https://runbooks.example.com/api/availability
    budget_policy:
      thresholds:
        - {consumed: 50, action: notify, receivers: [am]}
        - {consumed: 100, action: freeze, receivers: [am]}
"""


def notices(tmp_path: Path, at: float) -> dict[str, Notification]:
    """The daemon's notices for api/availability with 112 % of its budget spent, by action."""
    (tmp_path / "specs").mkdir(exist_ok=True)
    (tmp_path / "specs" / "api.yaml").write_text(SPEC)
    (slo,) = load_specs([tmp_path / "specs"]).slos
    found = policy_notifications([evaluation(slo, at, status="exhausted", budget=-0.12)], at)
    return {n.incident["policy_action"]: n for n in found}


@pytest.fixture
def alertmanager(tmp_path: Path) -> Iterator[str]:
    if ALERTMANAGER is None:
        pytest.skip(SKIP_REASON)
    config = "route:\n  receiver: blackhole\n  group_wait: 1h\nreceivers:\n  - name: blackhole\n"
    with local_alertmanager(config, tmp_path) as url:
        yield url


def active_alerts(url: str) -> list[dict]:
    with urllib.request.urlopen(url + "/api/v2/alerts?active=true", timeout=5) as response:
        return json.loads(response.read())


@pytest.mark.alertmanager
def test_real_alertmanager_lists_budget_notices_under_their_own_name(alertmanager, tmp_path):
    now = time.time()
    config = parse_notifier_configs(
        {"am": {"type": "alertmanager", "url": alertmanager, "resend_interval": "1m"}}
    )["am"]
    am = AlertmanagerNotifier("am", config, clock=time.time)
    by_action = notices(tmp_path, now)
    for notice in by_action.values():
        am.send(notice)
    # A rate-limit summary still posts as one.
    summary = replace(
        by_action["notify"],
        id="rate-limit:am:1",
        kind="summary",
        incident={"id": "rate-limit", "severity": "SEV2", "opened_at": now},
        title="3 notifications suppressed",
    )
    am.send(summary)

    listed = active_alerts(alertmanager)
    budget = sorted(
        (a for a in listed if a["labels"]["alertname"] == BUDGET_POLICY_ALERTNAME),
        key=lambda a: float(a["labels"]["threshold"]),
    )
    assert [a["labels"] for a in budget] == [
        {
            "alertname": "SLOBudgetPolicy",
            "service": "api",
            "slo": "api/availability",
            "threshold": threshold,
            "action": action,
            "severity": "SEV4",
        }
        for threshold, action in (("50", "notify"), ("100", "freeze"))
    ]
    freeze = budget[1]
    assert freeze["annotations"]["summary"] == (
        "[budget] api/availability: 112.0% of the error budget consumed (policy: freeze at 100%)"
    )
    assert "Releases of api are frozen" in freeze["annotations"]["description"]
    assert freeze["annotations"]["budget_consumed_percent"] == "112.0"
    assert freeze["annotations"]["runbook_url"] == "https://runbooks.example.com/api/availability"
    # Informational: it expires after 4 × resend_interval unless a new notice comes.
    assert 230 < datetime.fromisoformat(freeze["endsAt"]).timestamp() - now <= 241
    suppressed = [a for a in listed if a["labels"]["alertname"] == SUPPRESSED_ALERTNAME]
    assert [a["labels"]["receiver"] for a in suppressed] == ["am"]
    assert len(listed) == 3


def test_slack_pagerduty_and_webhook_render_a_notice_not_an_incident(tmp_path: Path):
    freeze = notices(tmp_path, 1_740_830_400.0)["freeze"]
    slack = slack_body(freeze)["attachments"][0]
    assert slack["title"].startswith("BUDGET POLICY: [budget] api/availability: 112.0%")
    assert slack["fields"] == [
        {"title": "Service", "value": "api", "short": True},
        {"title": "SLO", "value": "api/availability", "short": True},
        {"title": "Budget consumed", "value": "112.0 %", "short": True},
        {"title": "Policy", "value": "freeze at 100 %", "short": True},
    ]
    assert "Releases of api are frozen" in slack["text"]

    config = parse_notifier_configs(
        {"pd": {"type": "pagerduty", "routing_key_file": str(_key(tmp_path))}}
    )["pd"]
    body = event_body(freeze, config, "r" * 32)
    assert body["event_action"] == "trigger"
    assert body["dedup_key"] == "budget-policy:api/availability"
    assert body["payload"]["severity"] == "info"
    assert body["payload"]["class"] == "error_budget_policy"
    assert body["payload"]["custom_details"]["policy_action"] == "freeze"

    hook = webhook_body(freeze)
    assert set(hook) == {"event", "dedup_key", "incident"}
    assert hook["incident"]["id"] == "budget-policy:api/availability"
    assert hook["incident"]["policy_threshold_percent"] == 100
    assert hook["incident"]["policy_action"] == "freeze"
    assert hook["incident"]["budget_consumed_percent"] == pytest.approx(112.0)


def _key(tmp_path: Path) -> Path:
    key = tmp_path / "pd.key"
    key.write_text("r" * 32 + "\n")
    return key
