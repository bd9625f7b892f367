"""generate.yml for a real setup: PagerDuty/Slack/webhook receivers reading their secrets from
files, the route tree by tier/team/owner, Grafana's datasource and folder; PrometheusRule
output and Sloth naming — each checked by amtool or promtool, and `generate --check` stays
green on the generated output."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from engine.cli import _register, app

ROOT = Path(__file__).resolve().parents[1]
AMTOOL, PROMTOOL = shutil.which("amtool"), shutil.which("promtool")
needs_amtool = pytest.mark.skipif(AMTOOL is None, reason="needs amtool (prometheus-alertmanager)")
needs_promtool = pytest.mark.skipif(PROMTOOL is None, reason="needs promtool (prometheus)")
_register()

REAL_SETUP = """
alertmanager:
  receivers:
    pager:
      pagerduty: {routing_key_file: /etc/alertmanager/secrets/pagerduty-routing-key}
    ticket:
      slack: {api_url_file: /etc/alertmanager/secrets/slack-url, channel: "#slo-tickets"}
    platform-oncall:
      webhook:
        url: https://oncall.example.com/hooks/slo
        bearer_token_file: /etc/alertmanager/secrets/oncall-token
  routes:
    - {owner: team-platform, page: platform-oncall}
    - {tier: critical, ticket: pager}
grafana:
  datasource_uid: mimir
  datasource_name: Mimir
  folder: Reliability
prometheusrule:
  namespace: monitoring
  labels: {release: kube-prometheus-stack}
"""


def run(*args: str | Path) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["generate", *map(str, args)])
    return result.exit_code, result.output


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    shutil.copytree(ROOT / "slo_specs", tmp_path / "slo_specs")
    (tmp_path / "generate.yml").write_text(REAL_SETUP)
    return tmp_path


def dirs(repo: Path) -> list[str | Path]:
    return [
        "--specs",
        repo / "slo_specs",
        "--rules-dir",
        repo / "alerts",
        "--dashboards-dir",
        repo / "dashboards",
    ]


def test_receivers_routes_and_grafana_from_generate_yml_beside_the_specs(repo: Path) -> None:
    code, out = run(*dirs(repo))
    assert code == 0, out
    config = yaml.safe_load((repo / "alerts" / "alertmanager.yml").read_text())
    receivers = {r["name"]: r for r in config["receivers"]}
    assert receivers["pager"]["pagerduty_configs"] == [
        {
            "routing_key_file": "/etc/alertmanager/secrets/pagerduty-routing-key",
            "send_resolved": True,
        }
    ]
    assert receivers["ticket"]["slack_configs"][0]["api_url_file"].endswith("slack-url")
    webhook = receivers["platform-oncall"]["webhook_configs"][0]
    assert webhook["http_config"]["authorization"]["credentials_file"].endswith("oncall-token")
    owner, tier, page, ticket = config["route"]["routes"]
    # team-platform owns both services: matched by service at generation time.
    assert owner["matchers"] == ['service=~"api|database"']
    assert [(r["receiver"], r["matchers"]) for r in owner["routes"]] == [
        ("platform-oncall", ['severity="page"']),
        ("ticket", ['severity="ticket"']),  # the default where the route names none
    ]
    assert tier["matchers"] == ['tier="critical"']
    assert (page["receiver"], ticket["receiver"]) == ("pager", "ticket")
    assert config["inhibit_rules"]  # unchanged by the receivers
    provider = yaml.safe_load(
        (repo / "dashboards/provisioning/dashboards/slo-engine.yml").read_text()
    )
    assert provider["providers"][0]["folder"] == "Reliability"
    source = yaml.safe_load(
        (repo / "dashboards/provisioning/datasources/prometheus.yml").read_text()
    )
    assert (source["datasources"][0]["uid"], source["datasources"][0]["name"]) == (
        "mimir",
        "Mimir",
    )
    board = json.loads((repo / "dashboards" / "slo-api.json").read_text())
    (variable,) = [v for v in board["templating"]["list"] if v["name"] == "datasource"]
    assert variable["current"]["value"] == "mimir"

    # A real setup keeps its CI check: the output it generated is up to date.
    code, out = run(*dirs(repo), "--check")
    assert code == 0, out


@needs_amtool
def test_amtool_accepts_the_config_with_a_pagerduty_receiver(repo: Path) -> None:
    assert run(*dirs(repo))[0] == 0
    checked = subprocess.run(
        [AMTOOL, "check-config", repo / "alerts" / "alertmanager.yml"],
        capture_output=True,
        text=True,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        (
            "alertmanager:\n  receivers:\n    pager: {pagerduty: {routing_key: abc}}\n",
            "routing_key_file",
        ),
        (
            "alertmanager:\n  receivers:\n    pager: {webhook: {url: 'https://x/?token=s3'}}\n",
            "credential",
        ),
        ("alertmanager:\n  receivers:\n    pager: {slack: {api_url_file: /s}}\n", "ticket"),
        (
            "alertmanager:\n  page: p\n  ticket: p\n  receivers:\n    p: {slack: {api_url_file: /s}}\n"
            "  routes: [{team: nobody, page: p}]\n",
            "matches no service",
        ),
        ("grafana: {datasoruce_uid: x}\n", "datasoruce_uid"),
    ],
)
def test_invalid_generation_config_exits_1_and_says_why(
    repo: Path, setup: str, message: str
) -> None:
    (repo / "generate.yml").write_text(setup)
    code, out = run(*dirs(repo))
    assert code == 1
    assert message in out
    assert not (repo / "alerts").exists()


def _spec_groups(path: Path) -> dict[str, Any]:
    document = yaml.safe_load(path.read_text())
    assert document["apiVersion"] == "monitoring.coreos.com/v1"
    assert document["kind"] == "PrometheusRule"
    return {"groups": document["spec"]["groups"]}


def test_prometheusrule_output_one_object_per_service(repo: Path) -> None:
    code, out = run(*dirs(repo), "--format", "prometheusrule")
    assert code == 0, out
    files = sorted(p.name for p in (repo / "alerts").iterdir())
    assert files == ["alertmanager.yml", "api.prometheusrule.yml", "database.prometheusrule.yml"]
    document = yaml.safe_load((repo / "alerts" / "api.prometheusrule.yml").read_text())
    assert document["metadata"] == {
        "name": "slo-engine-api",
        "namespace": "monitoring",
        "labels": {
            "app.kubernetes.io/managed-by": "slo-engine",
            "release": "kube-prometheus-stack",
        },
    }
    # The same groups a rule file holds.
    run(*dirs(repo), "--rules-dir", repo / "plain", "--config", repo / "generate.yml")
    plain = yaml.safe_load((repo / "plain" / "api.rules.yml").read_text())
    assert document["spec"]["groups"] == plain["groups"]
    assert run(*dirs(repo), "--format", "prometheusrule", "--check")[0] == 0


@needs_promtool
@pytest.mark.parametrize("naming", ["native", "sloth"])
def test_promtool_checks_the_groups_of_every_prometheusrule(
    repo: Path, tmp_path: Path, naming: str
) -> None:
    assert run(*dirs(repo), "--format", "prometheusrule", "--naming", naming)[0] == 0
    extracted = []
    for path in sorted((repo / "alerts").glob("*.prometheusrule.yml")):
        target = tmp_path / f"{path.stem}.groups.yml"
        target.write_text(yaml.safe_dump(_spec_groups(path)))
        extracted.append(target)
    checked = subprocess.run(
        [PROMTOOL, "check", "rules", *extracted], capture_output=True, text=True
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr


SLOTH_NAMES = (
    "slo:sli_error:ratio_rate5m",
    "slo:sli_error:ratio_rate30d",
    "slo:objective:ratio",
    "slo:error_budget:ratio",
    "slo:time_period:days",
    "slo:current_burn_rate:ratio",
    "slo:period_burn_rate:ratio",
    "slo:period_error_budget_remaining:ratio",
    "sloth_slo_info",
)


@needs_promtool
def test_sloth_names_record_one_series_per_slo_as_sloth_dashboards_read_them(
    repo: Path, tmp_path: Path
) -> None:
    """Sloth's dashboards select by sloth_service/sloth_slo (and sloth_window): each name
    must give exactly one series per SLO, with the values Sloth would record."""
    assert run(*dirs(repo), "--naming", "sloth")[0] == 0
    rules = repo / "alerts" / "api.rules.yml"
    sel = 'sloth_service="api", sloth_slo="availability"'
    cases = [
        {
            "expr": f"count({name}{{{sel}}})",
            "eval_time": "10m",
            "exp_samples": [{"labels": "{}", "value": 1}],
        }
        for name in SLOTH_NAMES
        if name != "slo:sli_error:ratio_rate30d"  # the period needs its 5-minute tiles
    ]
    cases += [
        {
            "expr": f'sum(slo:sli_error:ratio_rate5m{{{sel}, sloth_window="5m"}})',
            "eval_time": "10m",
            "exp_samples": [{"labels": "{}", "value": 0.01}],
        },
        {
            "expr": f"sum(slo:objective:ratio{{{sel}}})",
            "eval_time": "10m",
            "exp_samples": [{"labels": "{}", "value": 0.999}],
        },
        {
            "expr": f"sum(slo:time_period:days{{{sel}}})",
            "eval_time": "10m",
            "exp_samples": [{"labels": "{}", "value": 30}],
        },
    ]
    test = {
        "rule_files": [str(rules)],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": [
                    {"series": 'http_requests_total{job="api",code="200"}', "values": "0+5940x20"},
                    {"series": 'http_requests_total{job="api",code="500"}', "values": "0+60x20"},
                ],
                "promql_expr_test": cases,
            }
        ],
    }
    test_file = tmp_path / "sloth.test.yml"
    test_file.write_text(yaml.safe_dump(test))
    result = subprocess.run(
        [PROMTOOL, "test", "rules", test_file], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stdout + result.stderr
