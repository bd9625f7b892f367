"""Schemathesis against /openapi.json, in-process over ASGI, on the daemon's REAL Runtime
(harness.api_runtime: SQLite state, a scripted source, one cycle at T0).

Every operation is called with generated inputs, valid and invalid, once with the admin
token and once without one: nothing may answer 5xx, and every answer — refusals included —
must be a documented status with the documented media type and schema. Bounded and
deterministic (a fixed seed, derandomized generation, no example database) so that a run
takes the same path every time and the file stays within a minute or so on a loaded
2-core machine.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from harness.api_runtime import FakeClock, sample_runtime
from harness.incidents import T0
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.config import SchemathesisConfig
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from engine.api.app import create_app
from engine.api.security import load_tokens
from engine.daemon.runtime import Runtime

ADMIN = "admin-token-Zq8w3n5v9k2m"
SEED = 20240301
MUTATING = {"POST", "PUT", "PATCH", "DELETE"}
# Per operation and mode: ~27 operations x 2 callers keep the file near a minute.
MAX_EXAMPLES = 10
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
CONFIG = SchemathesisConfig.from_dict(
    {
        "seed": SEED,
        "generation": {
            "mode": "all",
            "max-examples": MAX_EXAMPLES,
            "deterministic": True,
            "database": "none",
        },
        # Stateful links are not declared; the examples and coverage phases run once each.
        "phases": {"stateful": {"enabled": False}},
    }
)


@pytest.fixture(scope="module")
def runtime(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Runtime]:
    runtime = sample_runtime(tmp_path_factory.mktemp("fuzz"), FakeClock(T0 + 600), T0)
    yield runtime
    runtime.close()


@pytest.fixture(scope="module")
def api_schema(runtime: Runtime, tmp_path_factory: pytest.TempPathFactory) -> Any:
    tokens: Path = tmp_path_factory.mktemp("tokens") / "api-tokens"
    tokens.write_text(f"{ADMIN} name=fuzzer\n")
    # No rate limit and no lockout: the unauthenticated run fails authentication on
    # purpose, and a locked-out client would make every later answer a 429.
    app = create_app(
        runtime,
        load_tokens(tokens),
        rate_limit_per_s=1e9,
        burst=10**9,
        auth_failures=10**9,
        clock=runtime.clock,
    )
    loaded = schemathesis.openapi.from_asgi("/openapi.json", app, config=CONFIG)
    real = real_path_parameters(runtime)

    @loaded.hook
    def flatmap_path_parameters(context: Any, path_parameters: dict[str, Any]) -> Any:
        # Generated ids match the patterns but name nothing, so a change would stop at its
        # 404: half the cases name what the runtime holds, and the change really runs.
        if not path_parameters:
            return st.just(path_parameters)
        named = {**path_parameters, **{k: v for k, v in real.items() if k in path_parameters}}
        return st.sampled_from([path_parameters, named])

    return loaded


def real_path_parameters(runtime: Runtime) -> dict[str, str]:
    """Path parameters that name what the sample runtime holds: an SLO (and its service), an
    open incident with an action item, a silence."""
    slo = runtime.slo_results()[0].slo
    incident = sorted(i.id for i in runtime.list_incidents("open", None))[0]
    item = runtime.add_action_item(incident, "Check the fuzzer's findings", None, "fixture")
    silence = runtime.add_silence(
        [{"name": "service", "op": "=", "value": slo.service}],
        runtime.clock() + 3600,
        "fixture",
        "fuzzing",
        None,
    )
    return {
        "service": slo.service,
        "slo": slo.name,
        "incident_id": incident,
        "item_id": item.action_items[-1].id,
        "silence_id": silence["id"],
    }


schema = schemathesis.pytest.from_fixture("api_schema")

FUZZ_SETTINGS = settings(
    max_examples=MAX_EXAMPLES,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)


@schema.parametrize()
@FUZZ_SETTINGS
def test_with_a_token_nothing_fails_and_every_answer_is_documented(case: Any) -> None:
    # The generator makes up credentials too (any header case): replace them with the token.
    headers = {k: v for k, v in (case.headers or {}).items() if k.lower() != "authorization"}
    case.headers = {**headers, "Authorization": f"Bearer {ADMIN}"}
    response = case.call_and_validate(checks=CHECKS)
    # The token has every role: whatever else is wrong, it is never refused.
    assert response.status_code not in (401, 403), response.text


@schema.parametrize()
@FUZZ_SETTINGS
def test_without_a_token_nothing_fails_and_nothing_is_let_in(case: Any) -> None:
    # No credentials, or whatever the generator made up (never the admin token).
    response = case.call_and_validate(checks=CHECKS)
    operation = case.operation
    if (
        not operation.definition.raw.get("security")
        or case.method.upper() != operation.method.upper()
    ):
        return  # an anonymous route, or a method the route does not have (405)
    if case.method.upper() in MUTATING:
        # Refused before anything about the request is judged, its body included.
        assert response.status_code == 401, response.text
    else:
        # A read may say what is wrong with its parameters (they are public, in the
        # document), and nothing else.
        assert response.status_code in (401, 422), response.text
