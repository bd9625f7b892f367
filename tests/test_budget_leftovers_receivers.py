"""Receivers named in budget policies are checked against the daemon's (issue 14
leftovers): an unknown one stops the start with a located error, and a reload naming one is
rejected like invalid specs, the last good set kept."""

from __future__ import annotations

from pathlib import Path

import pytest
from harness.api_runtime import FakeClock, SampleSource, daemon_config, spec_documents, write_specs
from harness.incidents import T0

from engine.daemon.runtime import Runtime
from engine.daemon.specs import SpecsInvalid
from engine.spec.budget_policy import BudgetPolicySpec

POLICY = {
    "thresholds": [
        {"consumed": 50, "action": "notify", "receivers": ["sre-chat"]},
        {"consumed": 100, "action": "freeze", "receivers": ["release-managers", "cab"]},
    ]
}


def _specs(directory: Path, policy: dict) -> Path:
    documents = spec_documents()
    documents["api.yaml"]["budget_policy"] = policy
    return write_specs(directory, documents)


def test_an_unknown_policy_receiver_stops_the_start(tmp_path: Path) -> None:
    specs = _specs(tmp_path / "specs", POLICY)
    config = daemon_config(tmp_path, specs, receivers=("sre-chat", "release-managers"))
    with pytest.raises(SpecsInvalid) as raised:
        Runtime(config, clock=FakeClock(T0), source=SampleSource(T0), notifiers={})
    # One line per threshold (not one per SLO of the service), located at the spec file.
    assert raised.value.errors == [
        f"{specs / 'api.yaml'}: api/availability, api/latency-p95: budget_policy threshold 100% names unknown "
        "receivers 'cab' — configured: release-managers, sre-chat"
    ]


def test_a_reload_naming_an_unknown_receiver_keeps_the_last_good_specs(tmp_path: Path) -> None:
    known = {"thresholds": [{"consumed": 50, "action": "notify", "receivers": ["sre-chat"]}]}
    specs = _specs(tmp_path / "specs", known)
    clock = FakeClock(T0)
    config = daemon_config(tmp_path, specs, receivers=("sre-chat",))
    runtime = Runtime(config, clock=clock, source=SampleSource(T0), notifiers={})
    try:
        runtime.run_cycle(T0)
        before = runtime.spec_status()
        assert before["last_error"] is None
        _specs(specs, {"thresholds": [{"consumed": 50, "action": "notify", "receivers": ["ops"]}]})
        clock.now = T0 + 60
        runtime.run_cycle(T0 + 60)
        status = runtime.spec_status()
        assert status["loaded_at"] == before["loaded_at"] and status["slos"] == before["slos"]
        assert status["errors"] == [
            f"{specs / 'api.yaml'}: api/availability, api/latency-p95: budget_policy threshold 50% names unknown "
            "receivers 'ops' — configured: sre-chat"
        ]
        policies = {r.slo.id: r.slo.budget_policy for r in runtime.slo_results()}
        assert policies["api/availability"] == BudgetPolicySpec.model_validate(known)
    finally:
        runtime.close()
