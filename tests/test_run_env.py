"""`slo-engine run` reads every flag from `SLO_ENGINE_<FLAG>` too: each option of the command
(found by walking the command, so a flag added later is covered) reaches the daemon's
config from its variable; flag > variable > config file > default; a bad value names the
variable; and a daemon configured by the environment alone starts and serves."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import typing
from pathlib import Path
from typing import Any

import pytest
import requests
import typer.main
from typer.testing import CliRunner

from engine.cli import _register, app
from engine.commands import run as run_module
from engine.commands.env_flags import env_name
from engine.daemon.config import DaemonConfig
from engine.source.localprom import free_port
from engine.spec.durations import Duration

ROOT = Path(__file__).resolve().parents[1]


def run_command() -> Any:
    _register()
    return typer.main.get_group(app).commands["run"]


def options() -> list[Any]:
    return [p for p in run_command().params if env_name(p) is not None]


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in list(os.environ):
        if name.startswith("SLO_ENGINE_"):
            monkeypatch.delenv(name)
    return monkeypatch


@pytest.fixture
def captured(clean_env: pytest.MonkeyPatch) -> list[DaemonConfig]:
    """The config `run` would serve (serve() is the daemon itself: replaced by a recorder;
    logging setup left alone so this process's handlers stay as pytest made them)."""
    configs: list[DaemonConfig] = []

    def serve(config: DaemonConfig, config_dir: Path | None = None) -> int:
        configs.append(config)
        return 0

    clean_env.setattr("engine.commands.run.serve", serve)
    clean_env.setattr("engine.logs.configure_logging", lambda *a, **k: None)
    clean_env.setattr("engine.redact.redact_handlers", lambda *a, **k: None)
    return configs


def invoke(args: list[str], env: dict[str, str]) -> Any:
    _register()
    return CliRunner().invoke(app, ["run", *args], env=env)


def base_config(tmp_path: Path, extra: str = "") -> Path:
    path = tmp_path / "config.yml"
    path.write_text(
        f"specs: [{ROOT / 'slo_specs'}]\nstate_dir: {tmp_path / 'state'}\n"
        f"prometheus_url: http://127.0.0.1:9\n{extra}"
    )
    return path


def secret(tmp_path: Path, name: str) -> Path:
    path = tmp_path / name
    path.write_text("x\n")
    return path


def sample(option: Any, tmp_path: Path) -> tuple[str, Any]:
    """An env value for `option`, and what the config must then hold for its key."""
    key = option.name
    special: dict[str, tuple[str, Any]] = {
        "specs": (
            f"{ROOT / 'slo_specs'}, {tmp_path}",
            [ROOT / "slo_specs", tmp_path],
        ),
        "webhook": (
            "http://127.0.0.1:9/a http://127.0.0.1:9/b",
            ["http://127.0.0.1:9/a", "http://127.0.0.1:9/b"],
        ),
        "listen": ("127.0.0.1:18081", "127.0.0.1:18081"),
        "log_level": ("debug", "debug"),
        "log_format": ("json", "json"),
        "basic_auth_user": ("slo-user", "slo-user"),
    }
    if key in special:
        return special[key]
    kinds = typing.get_args(typing.get_type_hints(run_module.run)[key])
    if bool in kinds:
        return "true", True
    if int in kinds:
        return "7", 7
    if key.endswith(("_file", "_bundle", "_cert", "_key")):
        path = secret(tmp_path, key)
        return str(path), path
    if key.endswith("_dir"):
        return str(tmp_path / key), tmp_path / key
    if key.endswith("_url"):
        return "http://127.0.0.1:9/x", "http://127.0.0.1:9/x"
    if key.endswith(("interval", "timeout", "grace")):
        return "45s", Duration.parse("45s")
    raise AssertionError(f"add an env sample for --{key} to tests/test_run_env.py")


# Flag name → where its value lands in the config, when that is not the key of its name.
CONFIG_VALUE = {
    "webhook": lambda c: [str(u) for u in c.webhooks],
    "bearer_token_file": lambda c: c.authorization.credentials_file,
    "basic_auth_user": lambda c: c.basic_auth.username,
    "basic_auth_password_file": lambda c: c.basic_auth.password_file,
    "ca_bundle": lambda c: c.tls_config.ca_file,
    "client_cert": lambda c: c.tls_config.cert_file,
    "client_key": lambda c: c.tls_config.key_file,
}
# Flags that need another to be valid: set together.
COMPANION = {"basic_auth_password_file": "basic_auth_user", "client_key": "client_cert"}


def test_every_option_is_read_from_its_variable(tmp_path: Path, clean_env: Any) -> None:
    """The parsed command line, for every option: the variable fills an unset flag."""
    command = run_command()
    for option in options():
        name = env_name(option)
        value, _ = sample(option, tmp_path)
        clean_env.setenv(name, value)
        ctx = command.make_context("run", [])
        clean_env.delenv(name)
        assert ctx.get_parameter_source(option.name).name == "ENVIRONMENT", name
        got = ctx.params[option.name]
        expected = value.replace(",", " ").split() if option.multiple else [value]
        shown = [str(v) for v in (got if option.multiple else [got])]
        assert shown == expected, name


def test_every_option_reaches_the_config(tmp_path: Path, captured: list[DaemonConfig]) -> None:
    config = base_config(tmp_path)
    for option in options():
        name = env_name(option)
        if option.name == "config_file":  # the file itself, from the environment
            assert invoke([], {name: str(config)}).exit_code == 0
            assert captured.pop().prometheus_url == "http://127.0.0.1:9"
            continue
        value, expected = sample(option, tmp_path)
        env = {name: value}
        companion = COMPANION.get(option.name)
        if companion is not None:
            (other,) = [o for o in options() if o.name == companion]
            env[env_name(other)] = sample(other, tmp_path)[0]
        result = invoke(["--config", str(config)], env)
        assert result.exit_code == 0, (name, result.output)
        read = CONFIG_VALUE.get(option.name, lambda c, k=option.name: getattr(c, k))
        assert read(captured.pop()) == expected, name


def test_flag_beats_variable_beats_file_beats_default(
    tmp_path: Path, captured: list[DaemonConfig]
) -> None:
    without_key = base_config(tmp_path)
    without_key = without_key.rename(tmp_path / "plain.yml")
    with_key = base_config(tmp_path, "interval: 20s\n")
    env = {"SLO_ENGINE_INTERVAL": "40s"}
    assert invoke(["--config", str(with_key), "--interval", "50s"], env).exit_code == 0
    assert invoke(["--config", str(with_key)], env).exit_code == 0
    assert invoke(["--config", str(with_key)], {}).exit_code == 0
    assert invoke(["--config", str(without_key)], {}).exit_code == 0
    assert [str(c.interval) for c in captured] == ["50s", "40s", "20s", "30s"]
    # An empty variable is unset (an env file's `SLO_ENGINE_INTERVAL=`).
    assert invoke(["--config", str(with_key)], {"SLO_ENGINE_INTERVAL": " "}).exit_code == 0
    assert str(captured[-1].interval) == "20s"


def test_a_bad_value_names_its_variable(tmp_path: Path, captured: list[DaemonConfig]) -> None:
    config = base_config(tmp_path)
    result = invoke(["--config", str(config)], {"SLO_ENGINE_CONCURRENCY": "many"})
    assert result.exit_code == 2
    assert "SLO_ENGINE_CONCURRENCY" in result.output
    assert "--concurrency" in result.output
    # A value the config refuses is reported like the flag it stands for.
    result = invoke(["--config", str(config)], {"SLO_ENGINE_INTERVAL": "soon"})
    assert result.exit_code == 2
    assert "--interval:" in result.output
    assert captured == []


def test_a_daemon_configured_by_the_environment_alone(tmp_path: Path) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLO_ENGINE_")}
    env.update(
        {
            "SLO_ENGINE_SPECS": str(ROOT / "slo_specs"),
            "SLO_ENGINE_PROMETHEUS_URL": "http://127.0.0.1:9",
            "SLO_ENGINE_STATE_DIR": str(tmp_path / "state"),
            "SLO_ENGINE_LISTEN": f"127.0.0.1:{port}",
            "SLO_ENGINE_INTERVAL": "1h",
            "SLO_ENGINE_LOG_FORMAT": "json",
        }
    )
    daemon = subprocess.Popen(
        [sys.executable, "-m", "engine", "run"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline, status = time.monotonic() + 60, None
        while time.monotonic() < deadline and daemon.poll() is None:
            try:
                status = requests.get(f"http://127.0.0.1:{port}/healthz", timeout=5).status_code
                break
            except requests.RequestException:  # not listening, or not serving yet
                time.sleep(0.2)
        assert status == 200
        assert (tmp_path / "state").is_dir()
    finally:
        daemon.send_signal(signal.SIGTERM)
        _, stderr = daemon.communicate(timeout=30)
    assert daemon.returncode == 0, stderr
    # SLO_ENGINE_LOG_FORMAT reached the logging setup: the lines are JSON objects.
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert lines and all(line.startswith("{") for line in lines), stderr[-2000:]
