"""Error-budget policies (issue 14 item 5): the spec, the pure state, the notices in the
outbox, /metrics, and the release gate through the real app and Runtime."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from harness.api_runtime import (
    FakeClock,
    SampleSource,
    Shape,
    evaluation,
    sample_runtime,
    serve,
    spec_documents,
    write_specs,
)
from harness.incidents import T0
from prometheus_client import generate_latest
from pydantic import ValidationError
from typer.testing import CliRunner

from engine.api.app import create_app
from engine.api.security import load_tokens
from engine.cli import _register
from engine.cli import app as cli
from engine.daemon.runtime import Runtime
from engine.evaluation.budget_policy import policy_state, release_gate
from engine.incidents.budget_policy import policy_notifications
from engine.spec.budget_policy import BudgetPolicySpec
from engine.spec.loader import load_specs

_register()
TOKEN = "reader-token-0123456789abcdef"
POLICY = {
    "thresholds": [
        {"consumed": 50, "action": "notify", "receivers": ["sre-chat"]},
        {"consumed": 100, "action": "freeze", "receivers": ["release-managers"]},
    ]
}
# The daemon refuses a policy naming receivers it does not have (engine/daemon/budgets.py).
RECEIVERS = ("sre-chat", "release-managers")
EXHAUSTED = Shape("exhausted", budget=-0.12, recent=(("1h", 1.4), ("71h", 0.5)))
HALF = Shape("ok", budget=0.4, recent=(("1h", 0.2),))
OK = Shape("ok", budget=0.97, recent=(("1h", 0.2),))


def _specs(directory: Path) -> Path:
    documents = spec_documents()
    documents["api.yaml"]["budget_policy"] = POLICY
    return write_specs(directory / "specs", documents)


def test_policy_spec_is_checked():
    with pytest.raises(ValidationError, match="needs `receivers:`"):
        BudgetPolicySpec.model_validate({"thresholds": [{"consumed": 50, "action": "notify"}]})
    with pytest.raises(ValidationError, match="listed twice"):
        BudgetPolicySpec.model_validate({"thresholds": [{"consumed": 100, "action": "freeze"}] * 2})


def test_state_and_gate_are_pure_functions_of_evaluations(tmp_path: Path):
    slos = {s.id: s for s in load_specs([_specs(tmp_path)]).slos}
    slo = slos["api/availability"]
    assert slo.budget_policy is not None and slos["database/availability"].budget_policy is None
    ok, half, spent = (evaluation(slo, T0, budget=b) for b in (0.9, 0.4, -0.1))
    assert policy_state(ok).status == "ok"
    assert policy_state(half).status == "notify"
    assert policy_state(half).consumed == pytest.approx(60.0)
    assert policy_state(spent).status == "frozen"
    blind = evaluation(slo, T0, status="no_data")
    assert policy_state(blind).status == "unknown"
    assert release_gate("api", [ok]).allowed
    closed = release_gate("api", [spent])
    assert not closed.allowed and "freeze at 100%" in closed.reasons[0]
    # No data is not "allowed": the gate stays closed and says why.
    unknown = release_gate("api", [blind])
    assert not unknown.allowed and unknown.only_unknown and "budget unknown" in unknown.reasons[0]
    assert release_gate("payments", [ok]) is None
    # Notices: one per crossed threshold and receiver, the same ids every time.
    first = policy_notifications([spent], T0)
    assert sorted(n.receiver for n in first) == ["release-managers", "sre-chat"]
    assert [n.id for n in first] == [n.id for n in policy_notifications([spent], T0 + 60)]
    assert all(n.kind == "budget_policy" and n.event == "triggered" for n in first)


@pytest.fixture
def runtime(tmp_path: Path) -> Iterator[tuple[Runtime, SampleSource, FakeClock]]:
    specs = _specs(tmp_path)
    source = SampleSource(T0, {"api/availability": EXHAUSTED, "api/latency-p95": OK})
    clock = FakeClock(T0)
    runtime = sample_runtime(tmp_path, clock, T0, specs=specs, source=source, receivers=RECEIVERS)
    yield runtime, source, clock
    runtime.close()


def test_a_frozen_budget_turns_the_gate_to_423_and_back(runtime, tmp_path: Path):
    daemon, source, clock = runtime
    (tmp_path / "tokens").write_text(f"{TOKEN} read-only\n")
    app = create_app(daemon, load_tokens(tmp_path / "tokens"), clock=clock, burst=1000)
    client = TestClient(app, headers={"Authorization": f"Bearer {TOKEN}"})

    frozen = client.get("/api/v1/gates/api")
    assert frozen.status_code == 423
    body = frozen.json()
    assert body["allowed"] is False and len(body["reasons"]) == 1
    assert body["reasons"][0].startswith("api/availability: 112.0% of the error budget consumed")
    slo = client.get("/api/v1/slos/api/availability").json()
    assert slo["policy_state"]["status"] == "frozen"
    assert "policy_state" not in client.get("/api/v1/slos/database/availability").json()
    listed = {s["id"]: s for s in client.get("/api/v1/slos").json()["slos"]}
    assert listed["api/availability"] == slo
    assert client.get("/api/v1/gates/nothing").status_code == 404
    # The CI side: `slo-engine gate` over real HTTP exits 1 and says why.
    with serve(app) as url:
        args = ["gate", "api", "--url", url, "--token-file", str(tmp_path / "tokens")]
        closed = CliRunner().invoke(cli, args)
        assert closed.exit_code == 1, closed.output
        assert "api: releases frozen" in closed.output and "freeze at 100%" in closed.output
        assert CliRunner().invoke(cli, [*args[:4]]).exit_code == 2  # no token: 401
        assert CliRunner().invoke(cli, [*args, "--allow-unknown"]).exit_code == 1
    metrics = generate_latest(daemon.metrics_registry).decode()
    assert (
        'slo_engine_budget_policy_state{service="api",slo="api/availability",state="frozen"} 1.0'
        in metrics
    )

    # Notices went into the outbox once, however many cycles see the same crossing.
    daemon.run_cycle(T0 + 60)
    notices = [i for i in daemon.store.outbox_items() if i.notification.kind == "budget_policy"]
    assert sorted(i.notification.receiver for i in notices) == ["release-managers", "sre-chat"]

    # The budget recovers (a second daemon whose history is calmer: the first one's cache
    # keeps the spent history it already read).
    source = SampleSource(T0 + 120, {"api/availability": HALF, "api/latency-p95": OK})
    clock.now = T0 + 120
    daemon = sample_runtime(
        tmp_path / "second",
        clock,
        T0 + 120,
        specs=tmp_path / "specs",
        source=source,
        receivers=RECEIVERS,
    )
    try:
        app = create_app(daemon, load_tokens(tmp_path / "tokens"), clock=clock, burst=1000)
        client = TestClient(app, headers={"Authorization": f"Bearer {TOKEN}"})
        opened = client.get("/api/v1/gates/api")
        assert opened.status_code == 200 and opened.json()["allowed"] is True
        state = client.get("/api/v1/slos/api/availability").json()["policy_state"]
        assert state["status"] == "notify" and state["budget_consumed_percent"] == pytest.approx(
            60, abs=0.01
        )
        # Blind: the gate closes again, saying the budget is unknown.
        source.down = "connection refused"
        daemon.run_cycle(T0 + 180)
        blind = client.get("/api/v1/gates/api")
        assert blind.status_code == 423 and "budget unknown" in blind.json()["reasons"][0]
        with serve(app) as url:
            args = ["gate", "api", "--url", url, "--token-file", str(tmp_path / "tokens")]
            assert CliRunner().invoke(cli, args).exit_code == 1
            assert CliRunner().invoke(cli, [*args, "--allow-unknown"]).exit_code == 0
    finally:
        daemon.close()
