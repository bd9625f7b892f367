"""Alertmanager config: routing and inhibition, checked structurally, by amtool, and by a
real Alertmanager deciding which posted alerts are inhibited."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
import yaml
from harness.localam import ALERTMANAGER, SKIP_REASON, local_alertmanager

from engine.generate.alertmanager import alertmanager_config, dependency_edges
from engine.generate.pipeline import generate
from engine.spec.loader import load_specs
from engine.spec.models import SLO, ServiceSpec

ROOT = Path(__file__).resolve().parents[1]
AMTOOL = shutil.which("amtool")


def service(name: str, depends_on: list[str], slos: list[str]) -> list[SLO]:
    spec = {
        "apiVersion": "slo-engine/v1",
        "service": name,
        "depends_on": depends_on,
        "slos": [
            {"name": n, "objective": 99.9, "sli": {"availability": {"metric": "up"}}} for n in slos
        ],
    }
    return ServiceSpec.model_validate(spec).slo_records()


SLOS = [
    *service("api", ["database", "auth"], ["availability", "latency"]),
    *service("database", ["storage"], ["availability", "durability"]),
    *service("storage", [], ["availability"]),
]


def test_routes_pages_and_tickets_grouped_by_service_and_slo() -> None:
    route = alertmanager_config(SLOS)["route"]
    assert route["group_by"] == ["service", "slo"]
    assert [(r["matchers"], r["receiver"]) for r in route["routes"]] == [
        (['severity="page"'], "pager"),
        (['severity="ticket"'], "ticket"),
    ]


def test_inhibition_rules_from_severity_and_depends_on() -> None:
    assert dependency_edges(SLOS) == [("api", "auth"), ("api", "database"), ("database", "storage")]
    rules = alertmanager_config(SLOS)["inhibit_rules"]
    assert rules[0] == {
        "source_matchers": ['severity="page"'],
        "target_matchers": ['severity="ticket"'],
        "equal": ["slo"],
    }
    # Per edge: a page on the dependency silences everything on the dependent, a ticket
    # only the dependent's tickets.
    assert {
        "source_matchers": ['service="database"', 'severity="page"'],
        "target_matchers": ['service="api"'],
    } in rules
    assert {
        "source_matchers": ['service="database"', 'severity="ticket"'],
        "target_matchers": ['service="api"', 'severity="ticket"'],
    } in rules
    assert len(rules) == 1 + 2 * 3
    # Nothing silences a dependency from its dependents.
    assert not any('service="api"' in "".join(r["source_matchers"]) for r in rules)


@pytest.mark.alertmanager
@pytest.mark.skipif(
    AMTOOL is None, reason="needs amtool — sudo apt-get install -y prometheus-alertmanager"
)
def test_amtool_accepts_committed_and_generated_configs(tmp_path: Path) -> None:
    generated = next(f for f in generate(SLOS) if f.path == "alertmanager.yml")
    (tmp_path / "alertmanager.yml").write_text(generated.text)
    for path in (ROOT / "alerts" / "alertmanager.yml", tmp_path / "alertmanager.yml"):
        result = subprocess.run(
            [str(AMTOOL), "check-config", str(path)], capture_output=True, text=True, timeout=60
        )
        assert result.returncode == 0, result.stdout + result.stderr
        assert "SUCCESS" in result.stdout


# --- a real Alertmanager ----------------------------------------------------------------


@pytest.fixture
def alertmanager(tmp_path: Path) -> Iterator[str]:
    if ALERTMANAGER is None:
        pytest.skip(SKIP_REASON)
    config = next(f for f in generate(SLOS) if f.path == "alertmanager.yml")
    with local_alertmanager(config.text, tmp_path) as url:
        yield url


def _alert(service: str, slo: str, severity: str, window: str = "1h") -> dict:
    return {
        "labels": {
            "alertname": "SLOErrorBudgetBurn",
            "service": service,
            "slo": f"{service}/{slo}",
            "severity": severity,
            "long_window": window,
        }
    }


def _inhibited(url: str, alerts: list[dict]) -> dict[tuple[str, str, str], bool]:
    requests.post(f"{url}/api/v2/alerts", json=alerts, timeout=5).raise_for_status()
    got = requests.get(f"{url}/api/v2/alerts", timeout=5).json()
    assert len(got) == len(alerts)
    return {
        (a["labels"]["slo"], a["labels"]["severity"], a["labels"]["long_window"]): bool(
            a["status"]["inhibitedBy"]
        )
        for a in got
    }


@pytest.mark.alertmanager
def test_real_alertmanager_inhibits_dependents_and_tickets_under_a_page(alertmanager: str) -> None:
    state = _inhibited(
        alertmanager,
        [
            _alert("database", "availability", "page"),
            _alert("database", "availability", "ticket", "1d"),
            _alert("database", "durability", "ticket", "1d"),
            _alert("api", "availability", "page"),
            _alert("api", "latency", "ticket", "1d"),
            _alert("storage", "availability", "ticket", "1d"),
        ],
    )
    assert state == {
        # database pages: not silenced by storage's ticket (a ticket never hides a page)
        ("database/availability", "page", "1h"): False,
        # the same SLO's ticket is silenced by its page
        ("database/availability", "ticket", "1d"): True,
        # another database SLO's ticket: silenced by storage's ticket (database → storage)
        ("database/durability", "ticket", "1d"): True,
        # api depends on database: its page and its ticket are silenced
        ("api/availability", "page", "1h"): True,
        ("api/latency", "ticket", "1d"): True,
        # storage depends on nothing
        ("storage/availability", "ticket", "1d"): False,
    }


@pytest.mark.alertmanager
def test_real_alertmanager_a_dependency_ticket_does_not_hide_a_page(alertmanager: str) -> None:
    state = _inhibited(
        alertmanager,
        [
            _alert("database", "availability", "ticket", "1d"),
            _alert("api", "availability", "page"),
            _alert("api", "latency", "ticket", "1d"),
        ],
    )
    assert state == {
        ("database/availability", "ticket", "1d"): False,
        ("api/availability", "page", "1h"): False,
        ("api/latency", "ticket", "1d"): True,
    }


def test_committed_config_is_what_the_specs_generate() -> None:
    loaded = load_specs([ROOT / "slo_specs"])
    config = yaml.safe_load((ROOT / "alerts" / "alertmanager.yml").read_text())
    assert config == alertmanager_config(loaded.slos)
