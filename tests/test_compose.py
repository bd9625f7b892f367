"""docker-compose.yml cannot run here (no Docker), so its structure is checked instead:
services present, every mounted path exists, ports and targets line up, and the engine,
Prometheus, Grafana and the collector agree on paths, names and ports."""

from __future__ import annotations

import fnmatch
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from engine.generate.provisioning import DASHBOARDS_PATH, DATASOURCE_UID
from engine.generate.writer import OWNED_PATTERNS

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = ROOT / "docker-compose.yml"
REQUIRED_SERVICES = {
    "prometheus",
    "alertmanager",
    "grafana",
    "otel-collector",
    "slo-engine",
    "simulator",
}
# Written by `slo-engine generate`, possibly after this test runs on a fresh clone.
GENERATED_ROOTS = ("alerts", "dashboards")


def _load(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return _load(COMPOSE)


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, Any]:
    return compose["services"]


@pytest.fixture(scope="module")
def engine_config() -> dict[str, Any]:
    return _load(ROOT / "deploy" / "slo-engine.yml")


@pytest.fixture(scope="module")
def prometheus_config() -> dict[str, Any]:
    return _load(ROOT / "deploy" / "prometheus.yml")


def _mounts(service: dict[str, Any]) -> list[tuple[str, str, bool]]:
    """(source, target, read_only) of every short-syntax volume entry."""
    out = []
    for entry in service.get("volumes", []):
        parts = entry.split(":")
        out.append((parts[0], parts[1], len(parts) > 2 and "ro" in parts[2].split(",")))
    return out


def _bind_mounts(services: dict[str, Any]) -> list[tuple[str, str, str]]:
    return [
        (name, src, dst)
        for name, svc in services.items()
        for src, dst, _ in _mounts(svc)
        if src.startswith(("./", "/", "../"))
    ]


def _mount_source(service: dict[str, Any], target: str) -> str | None:
    """Host path (or volume name) mounted at `target` or at a parent directory of it."""
    best: tuple[int, str] | None = None
    for src, dst, _ in _mounts(service):
        if target == dst or target.startswith(dst.rstrip("/") + "/"):
            rest = target[len(dst) :].lstrip("/")
            candidate = f"{src.rstrip('/')}/{rest}" if rest else src
            if best is None or len(dst) > best[0]:
                best = (len(dst), candidate)
    return best[1] if best else None


def _container_ports(service: dict[str, Any]) -> set[int]:
    ports = {int(p) for p in service.get("expose", [])}
    for mapping in service.get("ports", []):
        ports.add(int(str(mapping).split(":")[-1].split("/")[0]))
    return ports


def _assert_reaches(services: dict[str, Any], url_or_target: str, what: str) -> None:
    """`host:port` or a URL must name a compose service and a port it listens on."""
    parsed = urlsplit(url_or_target if "//" in url_or_target else f"//{url_or_target}")
    assert parsed.hostname in services, f"{what}: {parsed.hostname!r} is not a compose service"
    assert parsed.port in _container_ports(services[parsed.hostname]), (
        f"{what}: {parsed.hostname} does not expose port {parsed.port}"
    )


def _flag(command: list[str], name: str) -> str:
    for i, arg in enumerate(command):
        if arg.startswith(f"{name}="):
            return arg.split("=", 1)[1]
        if arg == name:
            return command[i + 1]
    raise AssertionError(f"{name} missing from {command}")


# ---------------------------------------------------------------------------- services
def test_required_services_and_images(services: dict[str, Any]) -> None:
    assert services.keys() >= REQUIRED_SERVICES
    assert services["otel-collector"]["image"].startswith("otel/opentelemetry-collector-contrib:")
    assert services["prometheus"]["image"].startswith("prom/prometheus:")
    assert services["alertmanager"]["image"].startswith("prom/alertmanager:")
    assert services["grafana"]["image"].startswith("grafana/grafana:")
    for name in ("slo-engine", "simulator"):
        assert services[name]["build"]["dockerfile"] == "Dockerfile", name
        assert (ROOT / services[name]["build"]["context"] / "Dockerfile").is_file()
    # No image tag floats: a compose file that worked once keeps working.
    for name, svc in services.items():
        if "image" in svc and "build" not in svc:
            assert ":" in svc["image"] and not svc["image"].endswith(":latest"), name


def test_every_bind_mounted_path_exists(services: dict[str, Any]) -> None:
    for name, src, _ in _bind_mounts(services):
        assert not src.startswith("/"), f"{name}: absolute host path {src} breaks on other machines"
        path = (ROOT / src).resolve()
        assert ROOT in path.parents or path == ROOT, f"{name}: {src} leaves the repository"
        top = Path(src).parts[0]  # Path drops the leading "./"
        if top in GENERATED_ROOTS:
            assert (ROOT / top).is_dir(), f"{name}: ./{top}/ must exist (generated files go there)"
            continue
        assert path.exists(), f"{name}: mounted {src} does not exist"


def test_generated_mount_paths_exist_once_generated(services: dict[str, Any]) -> None:
    missing = [
        f"{name}: {src}"
        for name, src, _ in _bind_mounts(services)
        if Path(src).parts[0] in GENERATED_ROOTS and not (ROOT / src).exists()
    ]
    if missing:
        pytest.skip(f"not generated yet (run `slo-engine generate`): {', '.join(missing)}")


def test_named_volumes_and_secrets_are_declared(
    compose: dict[str, Any], services: dict[str, Any]
) -> None:
    declared = set(compose.get("volumes", {}))
    for name, svc in services.items():
        for src, _, _ in _mounts(svc):
            if not src.startswith(("./", "/", "../")):
                assert src in declared, f"{name}: volume {src!r} not declared at top level"
        for secret in svc.get("secrets", []):
            assert secret in compose["secrets"], f"{name}: secret {secret!r} not declared"
    # Secrets come from the environment or files outside git, never from a committed file.
    for secret in compose["secrets"].values():
        assert "environment" in secret


def test_published_ports_are_unique_and_exposed(services: dict[str, Any]) -> None:
    seen: dict[int, str] = {}
    for name, svc in services.items():
        for mapping in svc.get("ports", []):
            host, container = (int(x) for x in str(mapping).split(":")[-2:])
            assert host not in seen, f"host port {host} published by {seen.get(host)} and {name}"
            seen[host] = name
            assert str(container) in svc.get("expose", []), f"{name}: {container} not in expose"
    assert {9090, 9093, 3000, 8080, 9100} <= seen.keys()


# ---------------------------------------------------------------------------- prometheus
def test_prometheus_scrapes_compose_services(
    services: dict[str, Any], prometheus_config: dict
) -> None:
    jobs = {job["job_name"]: job for job in prometheus_config["scrape_configs"]}
    targets = {
        target: name
        for name, job in jobs.items()
        for static in job["static_configs"]
        for target in static["targets"]
    }
    for target, job in targets.items():
        _assert_reaches(services, target, f"scrape job {job}")
    scraped_hosts = {t.split(":")[0] for t in targets}
    assert {
        "simulator",
        "slo-engine",
        "prometheus",
        "alertmanager",
        "otel-collector",
    } <= scraped_hosts
    # The simulator's metrics carry job="api"/"database"/"backup", which the specs select on.
    assert jobs["simulator"]["honor_labels"] is True
    for alertmanagers in prometheus_config["alerting"]["alertmanagers"]:
        for static in alertmanagers["static_configs"]:
            for target in static["targets"]:
                _assert_reaches(services, target, "alerting")


def test_prometheus_config_file_and_rule_glob_match_the_mounts(
    services: dict[str, Any], prometheus_config: dict
) -> None:
    prom = services["prometheus"]
    config_file = _flag(prom["command"], "--config.file")
    assert _mount_source(prom, config_file) == "./deploy/prometheus.yml"
    (rule_glob,) = prometheus_config["rule_files"]
    directory, pattern = rule_glob.rsplit("/", 1)
    assert _mount_source(prom, directory) == "./alerts"
    # The glob takes exactly the rule files the generator writes, not alertmanager.yml.
    assert pattern in OWNED_PATTERNS["rules"]
    assert not fnmatch.fnmatch("alertmanager.yml", pattern)
    for rule_file in (ROOT / "alerts").glob("*.yml"):
        assert fnmatch.fnmatch(rule_file.name, pattern) == (rule_file.name != "alertmanager.yml")
    # History needs a retention longer than the longest SLO period.
    retention = _flag(prom["command"], "--storage.tsdb.retention.time")
    assert int(retention.removesuffix("d")) > 30
    assert _flag(prom["command"], "--storage.tsdb.path") == "/prometheus"
    assert _mount_source(prom, "/prometheus") == "prometheus-data"


def test_promtool_accepts_the_prometheus_config(tmp_path: Path) -> None:
    if shutil.which("promtool") is None:
        pytest.skip("needs promtool — install with: sudo apt-get install -y prometheus")
    # Rule paths are container paths; point them at the repository's alerts/ to check syntax.
    config = _load(ROOT / "deploy" / "prometheus.yml")
    config["rule_files"] = [str(ROOT / "alerts" / "*.rules.yml")]
    path = tmp_path / "prometheus.yml"
    path.write_text(yaml.safe_dump(config))
    proc = subprocess.run(
        ["promtool", "check", "config", str(path)], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_history_backfill_chain_feeds_prometheus(services: dict[str, Any]) -> None:
    history, backfill, simulator = services["history"], services["backfill"], services["simulator"]
    written = _flag(history["command"], "--write-history")
    volume = _mount_source(history, written)
    assert volume is not None and volume.startswith("history/")
    script = " ".join(backfill["command"])
    match = re.search(r"openmetrics --max-block-duration=\S+ (\S+) (\S+)", script)
    assert match, script
    assert _mount_source(backfill, match.group(1)) == volume
    assert _mount_source(backfill, match.group(2)) == "prometheus-data"
    assert backfill["depends_on"]["history"]["condition"] == "service_completed_successfully"
    assert (
        services["prometheus"]["depends_on"]["backfill"]["condition"]
        == "service_completed_successfully"
    )
    # Same start for the backfilled history and the live counters: no jump, no reset.
    assert _flag(history["command"], "--history-days") == _flag(
        simulator["command"], "--history-days"
    )
    assert _flag(simulator["command"], "--port") == "9100"
    assert _flag(simulator["command"], "--host") == "0.0.0.0"


# ---------------------------------------------------------------------------- alertmanager, grafana
def test_alertmanager_reads_the_generated_config(services: dict[str, Any]) -> None:
    am = services["alertmanager"]
    config_file = _flag(am["command"], "--config.file")
    assert _mount_source(am, config_file) == "./alerts/alertmanager.yml"
    assert "alertmanager.yml" in OWNED_PATTERNS["rules"]
    generated = ROOT / "alerts" / "alertmanager.yml"
    if not generated.exists():
        pytest.skip("alerts/alertmanager.yml not generated yet (run `slo-engine generate`)")
    assert "route" in _load(generated)


def test_grafana_provisioning_matches_the_generator(services: dict[str, Any]) -> None:
    grafana = services["grafana"]
    assert _mount_source(grafana, DASHBOARDS_PATH) == "./dashboards"
    assert (
        _mount_source(grafana, "/etc/grafana/provisioning/dashboards")
        == "./dashboards/provisioning/dashboards"
    )
    datasource_file = _mount_source(grafana, "/etc/grafana/provisioning/datasources/prometheus.yml")
    assert datasource_file == "./deploy/grafana/datasources.yml"
    (datasource,) = _load(ROOT / datasource_file)["datasources"]
    assert datasource["uid"] == DATASOURCE_UID  # the dashboards' default datasource
    _assert_reaches(services, datasource["url"], "grafana datasource")
    provider = ROOT / "dashboards" / "provisioning" / "dashboards" / "slo-engine.yml"
    if not provider.exists():
        pytest.skip("dashboards/provisioning not generated yet (run `slo-engine generate`)")
    (entry,) = _load(provider)["providers"]
    assert entry["options"]["path"] == DASHBOARDS_PATH


# ---------------------------------------------------------------------------- engine, collector
def test_engine_command_and_config_paths_are_consistent(
    services: dict[str, Any], engine_config: dict[str, Any]
) -> None:
    engine = services["slo-engine"]
    command = engine["command"]
    assert command[:2] == ["slo-engine", "run"]
    config_path = _flag(command, "--config")
    assert _mount_source(engine, config_path) == "./deploy/slo-engine.yml"
    assert _mount_source(engine, engine_config["specs"]) == "./slo_specs"
    assert _mount_source(engine, engine_config["state_dir"]) == "slo-engine-state"
    assert engine_config["api_token_file"] == "/run/secrets/slo_engine_api_tokens"
    assert "slo_engine_api_tokens" in engine["secrets"]
    _assert_reaches(services, engine_config["prometheus_url"], "prometheus_url")
    _assert_reaches(services, engine_config["telemetry"]["otlp_endpoint"], "otlp_endpoint")
    for name, notifier in engine_config["notifiers"].items():
        _assert_reaches(services, notifier["url"], f"notifier {name}")
    host, port = engine_config["listen"].rsplit(":", 1)
    assert host == "0.0.0.0", "inside a container the API must listen beyond loopback"
    assert int(port) in _container_ports(engine)
    assert "healthz" in " ".join(engine["healthcheck"]["test"])
    assert f":{port}/" in " ".join(engine["healthcheck"]["test"])


def test_engine_config_keys_and_no_inline_secrets(engine_config: dict[str, Any]) -> None:
    assert set(engine_config) == {
        "specs",
        "prometheus_url",
        "state_dir",
        "listen",
        "interval",
        "api_token_file",
        "telemetry",
        "notifiers",
        "store",
        "store_password_file",
    }
    # The daemon's own loader accepts it (paths are the container's; nothing is read here).
    from engine.daemon.config import load_config

    config = load_config(ROOT / "deploy" / "slo-engine.yml")
    assert config.telemetry.otlp_endpoint == "http://otel-collector:4318"
    assert list(config.all_notifiers()) == ["alertmanager"]
    text = (ROOT / "deploy" / "slo-engine.yml").read_text().lower()
    # Secrets are files (`*_file:` keys), never values: no `password:`, no password in the DSN.
    for word in ("token:", "password:", "routing_key:", "secret:"):
        assert word not in text
    assert config.shared_store and "@" in str(config.store)
    assert ":" not in str(config.store).split("//", 1)[1].split("@", 1)[0]


REPLICAS = ("slo-engine", "slo-engine-2")


def test_two_replicas_share_one_postgresql(
    services: dict[str, Any], engine_config: dict[str, Any]
) -> None:
    from urllib.parse import urlsplit

    postgres = services["postgres"]
    assert postgres["image"].startswith("postgres:15")  # the major version the tests run
    env = postgres["environment"]
    dsn = urlsplit(engine_config["store"])
    assert (dsn.username, dsn.path.lstrip("/")) == (env["POSTGRES_USER"], env["POSTGRES_DB"])
    _assert_reaches(services, f"{dsn.hostname}:{dsn.port}", "store")
    # One password, one secret: the server reads it at first start, the engines on connect.
    password_file = env["POSTGRES_PASSWORD_FILE"]
    assert password_file == engine_config["store_password_file"]
    secret = password_file.removeprefix("/run/secrets/")
    assert secret in postgres["secrets"]
    assert _mount_source(postgres, "/var/lib/postgresql/data") == "postgres-data"
    test = " ".join(postgres["healthcheck"]["test"])
    assert "pg_isready" in test and env["POSTGRES_USER"] in test
    ports: set[str] = set()
    for name in REPLICAS:
        engine = services[name]
        assert engine["command"] == services["slo-engine"]["command"]
        assert _mount_source(engine, "/etc/slo-engine/config.yml") == "./deploy/slo-engine.yml"
        assert secret in engine["secrets"]
        assert engine["depends_on"]["postgres"]["condition"] == "service_healthy"
        assert engine["healthcheck"] == services["slo-engine"]["healthcheck"]
        ports.update(engine["ports"])
        # Each its own state directory: nothing is shared but the database.
        assert _mount_source(engine, engine_config["state_dir"]) == f"{name}-state"
    assert len(ports) == len(REPLICAS)
    prometheus = _load(ROOT / "deploy" / "prometheus.yml")
    (job,) = [j for j in prometheus["scrape_configs"] if j["job_name"] == "slo-engine"]
    assert {t.split(":")[0] for t in job["static_configs"][0]["targets"]} == set(REPLICAS)


def test_otel_collector_pipelines_are_wired(services: dict[str, Any], engine_config: dict) -> None:
    collector = services["otel-collector"]
    config_arg = _flag(collector["command"], "--config")
    assert _mount_source(collector, config_arg) == "./deploy/otel-collector.yml"
    config = _load(ROOT / "deploy" / "otel-collector.yml")
    for signal, pipeline in config["service"]["pipelines"].items():
        for section in ("receivers", "processors", "exporters"):
            for component in pipeline.get(section, []):
                assert component in config[section], (
                    f"{signal}: {component} not defined in {section}"
                )
    assert set(config["service"]["pipelines"]) == {"traces", "metrics", "logs"}
    http_port = int(config["receivers"]["otlp"]["protocols"]["http"]["endpoint"].rsplit(":", 1)[1])
    assert urlsplit(engine_config["telemetry"]["otlp_endpoint"]).port == http_port
    exported = int(config["exporters"]["prometheus"]["endpoint"].rsplit(":", 1)[1])
    assert exported in _container_ports(collector)


# ---------------------------------------------------------------------------- Dockerfile
def test_dockerfile_installs_the_package_as_non_root() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    # Instructions start at column 0; indented lines continue the previous one.
    instructions = [
        line.split(None, 1)
        for line in dockerfile.splitlines()
        if line and not line[0].isspace() and not line.startswith("#")
    ]
    keywords = [parts[0] for parts in instructions]
    # The image the engine runs in is the last stage: Python 3.11 slim, pinned by digest.
    base = [parts[1] for parts in instructions if parts[0] == "FROM"][-1]
    assert re.fullmatch(r"python:3\.11(\.\d+)?-slim\S*@sha256:[0-9a-f]{64}", base), base
    assert re.search(r"^RUN pip install (--no-deps )?\.(\s|$)", dockerfile, re.MULTILINE)
    users = [parts[1].strip() for parts in instructions if parts[0] == "USER"]
    assert users and users[-1] not in ("root", "0")
    assert keywords.index("USER") < keywords.index("CMD")
    for parts in instructions:
        if parts[0] == "COPY" and not parts[1].startswith("--from="):  # not a build stage
            *sources, _dest = parts[1].split()
            for source in sources:
                # README.md included: pyproject's `readme` makes `pip install .` need it.
                assert (ROOT / source).exists(), f"COPY source {source} missing"
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert ".venv" in ignored and ".git" in ignored


def test_dockerfile_locks_dependencies_checks_health_and_ships_promtool() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert re.search(
        r"^RUN pip install --require-hashes --no-deps -r requirements\.lock$", dockerfile, re.M
    )
    assert dockerfile.index("requirements.lock") < dockerfile.index("COPY engine")
    (health,) = re.findall(r"^HEALTHCHECK .*(?:\n\s+.*)*", dockerfile, re.MULTILINE)
    assert "/healthz" in health and ":8080/" in health
    stage = re.search(r"^FROM (prom/prometheus:v(\d+\.\d+)\.\d+) AS (\w+)$", dockerfile, re.M)
    assert stage, "promtool comes from a pinned Prometheus release"
    assert f"COPY --from={stage.group(3)} /bin/promtool /usr/local/bin/promtool" in dockerfile
    assert stage.group(2) == "2.42"  # the version the tests run
    assert "SLO_ENGINE_REVISION" in dockerfile  # slo_engine_build_info{revision}


def _requirement_name(line: str) -> str:
    name = re.split(r"[\[<>=!~;\s]", line.strip(), maxsplit=1)[0]
    return re.sub(r"[-_.]+", "-", name).lower()


def test_the_lock_pins_every_dependency_with_hashes() -> None:
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    lock = (ROOT / "requirements.lock").read_text()
    pinned = {
        _requirement_name(m.group(1)): m.group(2)
        for m in re.finditer(r"^([A-Za-z0-9_.\-]+)==(\S+) \\$", lock, re.MULTILINE)
    }
    wanted = {_requirement_name(d) for d in project["dependencies"]}
    assert wanted <= set(pinned), f"regenerate requirements.lock: {wanted - set(pinned)}"
    # Every pin carries hashes (pip --require-hashes refuses the file otherwise).
    blocks = re.split(r"^(?=[A-Za-z0-9])", lock, flags=re.MULTILINE)
    assert all("--hash=sha256:" in b for b in blocks if "==" in b)


def _binary_version(binary: str) -> str | None:
    if shutil.which(binary) is None:
        return None
    out = subprocess.run([binary, "--version"], capture_output=True, text=True, check=False)
    match = re.search(r"version (\d+\.\d+)", out.stdout + out.stderr)
    return match.group(1) if match else None


def test_compose_runs_the_versions_the_tests_run(services: dict[str, Any]) -> None:
    images = {
        "prom/prometheus": [services["prometheus"]["image"], services["backfill"]["image"]],
        "prom/alertmanager": [services["alertmanager"]["image"]],
    }
    expected = {"prom/prometheus": "2.42", "prom/alertmanager": "0.25"}
    for repo, tags in images.items():
        for image in tags:
            name, tag = image.split(":")
            assert name == repo and tag.startswith(f"v{expected[repo]}."), image
    # And the binaries the tests run here say the same.
    for binary, repo in (("promtool", "prom/prometheus"), ("amtool", "prom/alertmanager")):
        found = _binary_version(binary)
        assert found in (None, expected[repo]), (binary, found)


def test_dependencies_wait_for_health(services: dict[str, Any]) -> None:
    for name in ("prometheus", "alertmanager", "grafana", "simulator", "slo-engine"):
        assert services[name].get("healthcheck", {}).get("test"), f"{name} has no healthcheck"
    for name, svc in services.items():
        for dependency, how in (svc.get("depends_on") or {}).items():
            if "healthcheck" in services[dependency]:
                assert how["condition"] == "service_healthy", (name, dependency)
