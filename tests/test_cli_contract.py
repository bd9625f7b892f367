"""One CLI contract for every command (docs/cli.md): the exit-code table, enum --format, Prometheus
durations, RFC 3339 or unix times, the same auth/TLS flags wherever Prometheus is read, and
--help that names values the way users write them.

Prometheus is real (backfilled with promtool); "behind auth" is a token-checking proxy in
front of it, so the header is seen arriving and the command gets real answers through it.
"""

from __future__ import annotations

import base64
import functools
import json
import ssl
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest
import requests
import typer.main
from harness.certs import TestCA
from typer.testing import CliRunner

from engine.cli import _register, app
from engine.commands.exit_codes import ExitCode
from engine.commands.options import parse_time
from engine.demo.scenario import Scenario, ServiceLoad
from engine.source.localprom import LocalPrometheus, free_port

pytestmark = pytest.mark.prometheus

_register()
runner = CliRunner()

HOUR = 3600
START = (int(time.time()) // HOUR - 8) * HOUR
SCENARIO = Scenario(
    start=START,
    duration=6 * HOUR,
    scrape_interval=30,
    services=[ServiceLoad(job="api", rps=5, error_ratio=0.01, slow_ratio=0.0)],
)
AT = START + 6 * HOUR - 60  # a whole minute inside the data
SPEC = """\
apiVersion: slo-engine/v1
service: api
slos:
  - name: availability
    objective: 99.9
    sli:
      events:
        bad: sum(rate(http_requests_total{job="api",code="500"}[{{window}}]))
        total: sum(rate(http_requests_total{job="api"}[{{window}}]))
"""
TOKEN = "contract-token-3f9a"
USER, PASSWORD = "reader", "contract-password-71c2"
AUTH_FLAGS = (
    "--bearer-token-file",
    "--basic-auth-user",
    "--basic-auth-password-file",
    "--ca-bundle",
    "--client-cert",
    "--client-key",
)
PROMETHEUS_READERS = ("evaluate", "backtest", "suggest", "report", "run")
# Python's names for types, which --help must never show.
INTERNAL_NAMES = (
    "<class",
    "<bool>",
    "<str>",
    "<int",
    "<float>",
    "<path>",
    "list[",
    "Path]",
    "Duration",
    "NoneType",
    "Optional",
    "typing.",
    "StrEnum",
    "TableFormat",
)


def invoke(*args: str, **kwargs: Any) -> Any:
    return runner.invoke(app, list(args), **kwargs)


@functools.cache
def root_command() -> Any:
    return typer.main.get_command(app)


def every_command() -> list[tuple[str, ...]]:
    """The path of every command and group under `slo-engine`, the root included."""
    paths: list[tuple[str, ...]] = []

    def walk(command: Any, path: tuple[str, ...]) -> None:
        paths.append(path)
        for name, sub in getattr(command, "commands", {}).items():
            walk(sub, (*path, name))

    walk(root_command(), ())
    return paths


def command_at(path: tuple[str, ...]) -> Any:
    command: Any = root_command()
    for name in path:
        command = command.commands[name]
    return command


def options_of(path: tuple[str, ...]) -> list[Any]:
    return [p for p in command_at(path).params if getattr(p, "param_type_name", "") == "option"]


# ------------------------------------------------------------------ fixtures


@pytest.fixture(scope="module")
def prometheus(module_prometheus_for: Any) -> LocalPrometheus:
    return module_prometheus_for(SCENARIO)


@pytest.fixture(scope="module")
def specs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("specs")
    (root / "api.yaml").write_text(SPEC)
    return root


@pytest.fixture(scope="module")
def bad_specs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("bad-specs")
    (root / "api.yaml").write_text(SPEC.replace("objective: 99.9", "objective: 150"))
    return root


@pytest.fixture(scope="module")
def secrets(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("secrets")
    (root / "token").write_text(TOKEN + "\n")
    (root / "password").write_text(PASSWORD + "\n")
    return {"token": root / "token", "password": root / "password"}


class _Proxy(BaseHTTPRequestHandler):
    """Prometheus behind auth: a request without the expected bearer token or basic auth is
    refused with 401, as an authenticating reverse proxy would; the others are forwarded."""

    upstream = ""
    open_door = False  # behind mutual TLS instead: the handshake is the check
    seen: ClassVar[list[tuple[str, str]]] = []  # (path, Authorization header)

    def _handle(self) -> None:
        auth = self.headers.get("Authorization", "")
        type(self).seen.append((self.path.split("?")[0], auth))
        basic = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
        if not self.open_door and auth not in (f"Bearer {TOKEN}", basic):
            self.send_response(401)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(b'{"status":"error","error":"unauthorized"}')
            return
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        headers = {
            k: v for k, v in self.headers.items() if k.lower() not in ("host", "authorization")
        }
        # Whole bodies relayed byte for byte: no HTTP-level compression to undo.
        headers["Accept-Encoding"] = "identity"
        answer = requests.request(
            self.command, self.upstream + self.path, data=body, headers=headers, timeout=30
        )
        self.send_response(answer.status_code)
        for name, value in answer.headers.items():
            if name.lower() in ("content-type", "content-encoding") or name.lower().startswith(
                "x-prometheus"
            ):
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(answer.content)))
        self.end_headers()
        self.wfile.write(answer.content)

    do_GET = do_POST = _handle

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def guarded(prometheus: LocalPrometheus) -> Iterator[tuple[str, list[tuple[str, str]]]]:
    """The URL of Prometheus behind the auth proxy, and the (path, Authorization) it saw."""
    handler = type("Proxy", (_Proxy,), {"upstream": prometheus.url, "seen": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", handler.seen
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def mtls(
    prometheus: LocalPrometheus, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, dict[str, Path]]]:
    """Prometheus behind mutual TLS (a certificate from the test CA, a client certificate
    required): its https URL, and the CA bundle and client certificate files."""
    directory = tmp_path_factory.mktemp("tls")
    ca = TestCA(directory)
    server, client = ca.issue("127.0.0.1", server=True), ca.issue("slo-engine", server=False)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(server.cert, server.key)
    context.verify_mode = ssl.CERT_REQUIRED
    context.load_verify_locations(ca.pem)
    handler = type("Proxy", (_Proxy,), {"upstream": prometheus.url, "seen": [], "open_door": True})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    files = {"ca": ca.pem, "cert": client.cert, "key": client.key}
    yield f"https://127.0.0.1:{httpd.server_address[1]}", files
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def garbage() -> Iterator[str]:
    """A loopback server answering 200 with HTML: not Prometheus' API."""

    class Page(BaseHTTPRequestHandler):
        def _handle(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.end_headers()
            self.wfile.write(b"<html><body>Welcome to nginx!</body></html>")

        do_GET = do_POST = _handle

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Page)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def closed_url() -> str:
    return f"http://127.0.0.1:{free_port()}"


def month_of(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m")


# ------------------------------------------------------------------ the exit-code table


def test_the_table_is_the_documented_one() -> None:
    assert [(c.name, int(c)) for c in ExitCode] == [
        ("OK", 0),
        ("FINDINGS", 1),
        ("USAGE", 2),
        ("UNAVAILABLE", 3),
        ("INTERNAL", 4),
    ]
    doc = (Path(__file__).resolve().parents[1] / "docs" / "cli.md").read_text()
    for code in ExitCode:
        assert f"| {int(code)} |" in doc, f"docs/cli.md lacks exit code {int(code)}"


@pytest.mark.parametrize(
    "args",
    [
        ("evaluate", "--specs", "S", "--prometheus-url", "U", "--format", "yaml"),
        ("evaluate", "--specs", "S", "--prometheus-url", "U", "--timeout", "10"),
        ("backtest", "--specs", "S", "--prometheus-url", "U", "--start", "0"),  # no --end
        ("suggest", "--specs", "S", "--prometheus-url", "U", "--step", "5"),
        ("report", "--month", "2026-13", "--state-dir", "S"),
        ("report", "--month", "2026-11", "--format", "pdf", "--state-dir", "S"),
        ("gate", "api", "--url", "U", "--timeout", "10"),
        ("generate", "--specs", "S", "--format", "yaml"),
        ("validate",),
        ("validate", "S", "--format", "xml"),
        ("run", "--no-such-flag"),
        ("incidents", "list", "--state-dir", "S", "--format", "xml"),
        ("incidents", "review", "INC-1", "--state-dir", "S", "--format", "table"),
    ],
    ids=lambda a: " ".join(a[:1] + a[-2:]),
)
def test_usage_errors_exit_2(args: tuple[str, ...], specs: Path) -> None:
    args = tuple(str(specs) if a == "S" else "http://127.0.0.1:9" if a == "U" else a for a in args)
    result = invoke(*args)
    assert result.exit_code == ExitCode.USAGE, result.output
    assert "Traceback" not in result.output


@pytest.mark.parametrize("command", ["evaluate", "backtest", "suggest", "report", "gate"])
def test_unreachable_source_exits_3(command: str, specs: Path, tmp_path: Path) -> None:
    url = closed_url()
    args = {
        "evaluate": ["--specs", str(specs), "--prometheus-url", url, "--timeout", "1s"],
        "backtest": [
            *("--specs", str(specs), "--prometheus-url", url, "--timeout", "1s"),
            *("--start", str(START + 4 * HOUR), "--end", str(AT), "--warmup", "3d"),
        ],
        "suggest": [
            *("--specs", str(specs), "--prometheus-url", url, "--timeout", "1s"),
            *("--days", "4", "--end", str(AT)),
        ],
        "report": ["--month", month_of(AT), "--from-prometheus", url, "--specs", str(specs)],
        "gate": ["api", "--url", url, "--timeout", "1s"],
    }[command]
    result = invoke(command, *args)
    assert result.exit_code == ExitCode.UNAVAILABLE, result.output
    assert "Traceback" not in result.output


def test_a_server_that_is_not_prometheus_exits_3(garbage: str, specs: Path) -> None:
    result = invoke("evaluate", "--specs", str(specs), "--prometheus-url", garbage, "--at", "0")
    assert result.exit_code == ExitCode.UNAVAILABLE, result.output
    assert "unexpected response" in result.stderr or "unavailable" in result.stderr


@pytest.mark.parametrize("command", ["evaluate", "backtest", "suggest", "report", "generate"])
def test_invalid_specs_exit_1(command: str, bad_specs: Path, tmp_path: Path) -> None:
    url = closed_url()  # never asked: the specs are refused first
    args = {
        "evaluate": ["--specs", str(bad_specs), "--prometheus-url", url],
        "backtest": [
            *("--specs", str(bad_specs), "--prometheus-url", url),
            *("--start", "2024-01-03T00:00:00Z", "--end", "2024-01-04T00:00:00Z"),
        ],
        "suggest": ["--specs", str(bad_specs), "--prometheus-url", url],
        "report": ["--month", "2026-11", "--from-prometheus", url, "--specs", str(bad_specs)],
        "generate": [
            *("--specs", str(bad_specs), "--rules-dir", str(tmp_path / "r")),
            *("--dashboards-dir", str(tmp_path / "d")),
        ],
    }[command]
    result = invoke(command, *args)
    assert result.exit_code == ExitCode.FINDINGS, result.output
    assert "objective" in result.output or "invalid" in result.output
    assert not (tmp_path / "r").exists()


def test_validate_exits_1_on_invalid_and_0_on_valid(specs: Path, bad_specs: Path) -> None:
    assert invoke("validate", str(bad_specs)).exit_code == ExitCode.FINDINGS
    assert invoke("validate", str(specs)).exit_code == ExitCode.OK


def test_ok_exits_0_through_the_auth_proxy(
    guarded: tuple[str, list[tuple[str, str]]], specs: Path, secrets: dict[str, Path]
) -> None:
    url, seen = guarded
    result = invoke(
        *("evaluate", "--specs", str(specs), "--prometheus-url", url, "--at", str(AT)),
        *("--bearer-token-file", str(secrets["token"]), "--format", "json"),
    )
    assert result.exit_code == ExitCode.OK, result.output
    (slo,) = json.loads(result.stdout)["slos"]
    assert slo["status"] != "error" and slo["error_budget_remaining"] is not None
    assert seen and all(auth == f"Bearer {TOKEN}" for _, auth in seen)


# Internal errors: something each command calls raises what nobody expects.
_BREAKS = {
    "evaluate": "engine.spec.loader.SpecLoading",  # reads in two halves (the prefetch)
    "backtest": "engine.spec.loader.load_specs",
    "suggest": "engine.spec.loader.load_specs",
    "validate": "engine.commands.validate.load_specs",
    "generate": "engine.commands.generate.load_specs",
    "gate": "engine.commands.gate._ask",
    "incidents": "engine.commands.incidents._open_store",
    "report": "engine.commands.report.month_days",
}


def _internal_args(command: str, specs: Path, tmp_path: Path) -> list[str]:
    url = "http://127.0.0.1:9"
    return {
        "evaluate": ["evaluate", "--specs", str(specs), "--prometheus-url", url],
        "backtest": [
            *("backtest", "--specs", str(specs), "--prometheus-url", url),
            *("--start", "0", "--end", "86400"),
        ],
        "suggest": ["suggest", "--specs", str(specs), "--prometheus-url", url],
        "validate": ["validate", str(specs)],
        "generate": ["generate", "--specs", str(specs), "--rules-dir", str(tmp_path / "r")],
        "gate": ["gate", "api", "--url", url],
        "incidents": ["incidents", "list", "--state-dir", str(tmp_path)],
        "report": ["report", "--month", "2026-11", "--state-dir", str(tmp_path)],
    }[command]


@pytest.mark.parametrize("command", sorted(_BREAKS))
def test_an_internal_error_exits_4_with_one_line(
    command: str, specs: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("the flux capacitor http://user:hunter2@db:5432 is off")

    monkeypatch.setattr(_BREAKS[command], broken)
    monkeypatch.delenv("SLO_ENGINE_DEBUG", raising=False)
    result = invoke(*_internal_args(command, specs, tmp_path))
    assert result.exit_code == ExitCode.INTERNAL, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "internal error (RuntimeError: the flux capacitor" in lines[0]
    assert "please report" in lines[0] and "--debug" in lines[0]
    assert "hunter2" not in result.stderr  # redacted: messages may quote URLs
    assert "Traceback" not in result.output


def test_debug_lets_the_traceback_through(
    specs: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("boom")

    monkeypatch.setattr("engine.commands.validate.load_specs", broken)
    flagged = invoke("--debug", "validate", str(specs))
    assert isinstance(flagged.exception, RuntimeError) and flagged.exit_code != ExitCode.INTERNAL
    monkeypatch.setenv("SLO_ENGINE_DEBUG", "1")
    from_env = invoke("validate", str(specs))
    assert isinstance(from_env.exception, RuntimeError)
    monkeypatch.delenv("SLO_ENGINE_DEBUG")
    # One run's --debug does not leak into the next.
    assert invoke("validate", str(specs)).exit_code == ExitCode.INTERNAL


def test_the_installed_entry_point_exits_4(
    specs: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # engine.cli.main loads only the command run (its lazy path): the guard is there too.
    from engine.cli import main

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise KeyError("nobody expects this")

    monkeypatch.setattr("engine.commands.validate.load_specs", broken)
    monkeypatch.delenv("SLO_ENGINE_DEBUG", raising=False)
    monkeypatch.setattr(sys, "argv", ["slo-engine", "validate", str(specs)])
    # In-process here: the exit must stay a SystemExit, not end the test run (os._exit).
    monkeypatch.setattr("engine.cli.QUICK_EXIT", frozenset())
    with pytest.raises(SystemExit) as exited:
        main()
    assert exited.value.code == ExitCode.INTERNAL
    assert "internal error (KeyError" in capsys.readouterr().err


# ------------------------------------------------------------------ --format, durations, times


def test_every_format_flag_is_a_choice_shown_in_help() -> None:
    found = 0
    for path in every_command():
        for option in options_of(path):
            if "--format" not in option.opts:
                continue
            found += 1
            result = invoke(*path, "--help", env={"COLUMNS": "200"})
            choices = [str(getattr(c, "value", c)) for c in option.type_descriptor.choices]
            assert "json" in choices or "prometheusrule" in choices, (path, choices)
            assert "[" + "|".join(choices) + "]" in result.output, (path, result.output)
    assert found >= 20  # evaluate, backtest, suggest, report, gate, generate, validate, incidents…


def _duration_options() -> list[tuple[tuple[str, ...], str]]:
    return [
        (path, option.opts[0])
        for path in every_command()
        for option in options_of(path)
        if option.metavar == "DURATION"
    ]


def test_every_duration_valued_flag_says_duration() -> None:
    flags = {(p[0] if p else "", f) for p, f in _duration_options()}
    for expected in [
        ("evaluate", "--timeout"),
        ("evaluate", "--scrape-interval"),
        ("backtest", "--timeout"),
        ("backtest", "--step"),
        ("backtest", "--warmup"),
        ("suggest", "--timeout"),
        ("suggest", "--step"),
        ("gate", "--timeout"),
        ("run", "--query-timeout"),
        ("run", "--interval"),
        ("incidents", "--next-update"),
    ]:
        assert expected in flags, expected
    # No flag left taking bare seconds.
    for path in every_command():
        for option in options_of(path):
            annotation = getattr(option.type_descriptor, "annotation", None)
            if annotation is float:
                assert option.metavar in ("TIME",), (path, option.opts)


_BASE = {
    "evaluate": ["--specs", "S", "--prometheus-url", "U"],
    "backtest": ["--specs", "S", "--prometheus-url", "U", "--start", "0", "--end", "1"],
    "suggest": ["--specs", "S", "--prometheus-url", "U"],
    "gate": ["api", "--url", "U"],
    "incidents update": [
        *("INC-1", "--state-dir", "S", "--impact", "i", "--actions", "a"),
        *("--expected-resolution", "e"),
    ],
}


@pytest.mark.parametrize(
    "path,flag",
    [(p, f) for p, f in _duration_options() if p[0] != "run"],  # run: see test_daemon_config
    ids=lambda x: " ".join(x) if isinstance(x, tuple) else x,
)
def test_duration_flags_refuse_bare_numbers_and_take_units(
    path: tuple[str, ...], flag: str, specs: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    base = [str(specs) if a == "S" else "http://127.0.0.1:9" if a == "U" else a for a in
            _BASE[" ".join(path)]]  # fmt: skip
    bare = invoke(*path, *base, flag, "30")
    assert bare.exit_code == ExitCode.USAGE
    assert flag in bare.output and "not a duration" in bare.output
    # Accepted: stop right after parsing by breaking what every command calls first.
    monkeypatch.setattr("engine.spec.loader.load_specs", _stop)
    monkeypatch.setattr("engine.spec.loader.SpecLoading", _stop)  # evaluate's staged load
    monkeypatch.setattr("engine.commands.gate._ask", _stop)
    monkeypatch.setattr("engine.commands.incident_response._decide", _stop)
    for value in ("30s", "5m", "1h", "28d"):
        taken = invoke(*path, *base, flag, value)
        assert taken.exit_code == ExitCode.INTERNAL, (value, taken.output)
        assert "internal error (_Parsed" in taken.stderr, (value, taken.output)


class _Parsed(Exception):
    """Raised where a command would start working: its flags parsed."""


def _stop(*args: Any, **kwargs: Any) -> Any:
    raise _Parsed


@pytest.mark.parametrize(
    "text,expected",
    [
        ("0", 0.0),
        ("1704276000", 1704276000.0),
        ("1704276000.5", 1704276000.5),
        ("2024-01-03T10:00:00Z", 1704276000.0),
        ("2024-01-03T10:00:00z", 1704276000.0),
        ("2024-01-03T11:30:00+01:30", 1704276000.0),
        ("2024-01-03T10:00:00.250Z", 1704276000.25),
    ],
)
def test_time_parser_takes_unix_seconds_and_rfc3339(text: str, expected: float) -> None:
    assert parse_time(text) == expected


@pytest.mark.parametrize(
    "text,message",
    [
        ("yesterday", "not a time"),
        ("2024-01-03T10:00:00", "no time zone"),
        ("nan", "finite"),
        ("inf", "finite"),
        ("-5", "≥ 0"),
        ("", "not a time"),
    ],
)
def test_time_parser_refuses_with_a_reason(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_time(text)


def _time_options() -> list[tuple[tuple[str, ...], str]]:
    return [
        (path, option.opts[0])
        for path in every_command()
        for option in options_of(path)
        if option.metavar == "TIME"
    ]


def test_time_flags_are_the_known_ones() -> None:
    assert {(p[0], f) for p, f in _time_options()} == {
        ("evaluate", "--at"),
        ("backtest", "--start"),
        ("backtest", "--end"),
        ("suggest", "--end"),
    }


@pytest.mark.parametrize(
    "path,flag", _time_options(), ids=lambda x: " ".join(x) if isinstance(x, tuple) else x
)
def test_time_flags_refuse_what_is_not_a_time(
    path: tuple[str, ...], flag: str, specs: Path
) -> None:
    base = [str(specs) if a == "S" else "http://127.0.0.1:9" if a == "U" else a for a in
            _BASE[path[0]]]  # fmt: skip
    result = invoke(*path, *base, flag, "last tuesday")
    assert result.exit_code == ExitCode.USAGE
    assert flag in result.output and "not a time" in result.output


def test_at_in_rfc3339_and_unix_seconds_is_the_same_instant(
    prometheus: LocalPrometheus, specs: Path
) -> None:
    rfc3339 = datetime.fromtimestamp(AT, UTC).isoformat().replace("+00:00", "Z")
    documents = [
        json.loads(
            invoke(
                *("evaluate", "--specs", str(specs), "--prometheus-url", prometheus.url),
                *("--at", at, "--format", "json"),
            ).stdout
        )
        for at in (str(AT), rfc3339)
    ]
    assert documents[0]["evaluated_at"] == AT
    assert documents[0] == documents[1]


# ------------------------------------------------------------------ auth and TLS flags


@pytest.mark.parametrize("command", PROMETHEUS_READERS)
def test_every_prometheus_reader_has_the_same_auth_flags(command: str) -> None:
    options = {o.opts[0]: o for o in options_of((command,))}
    evaluate = {o.opts[0]: o for o in options_of(("evaluate",))}
    for flag in AUTH_FLAGS:
        assert flag in options, f"{command} lacks {flag}"
        # One declaration shared: same help, same metavar.
        assert options[flag].help.startswith(evaluate[flag].help), (command, flag)
        assert options[flag].metavar == evaluate[flag].metavar


def test_backtest_reads_prometheus_behind_a_bearer_token(
    guarded: tuple[str, list[tuple[str, str]]], specs: Path, secrets: dict[str, Path]
) -> None:
    url, seen = guarded
    args = [
        *("backtest", "--specs", str(specs), "--prometheus-url", url),
        *("--start", str(START + 4 * HOUR), "--end", str(AT), "--warmup", "3d"),
        *("--format", "json", "--workers", "1", "--timeout", "10s"),
    ]
    refused = invoke(*args)
    assert refused.exit_code == ExitCode.UNAVAILABLE, refused.output
    assert "401" in refused.output
    seen.clear()
    result = invoke(*args, "--bearer-token-file", str(secrets["token"]))
    assert result.exit_code == ExitCode.OK, result.output
    document = json.loads(result.stdout)
    assert document["summary"]["budget_consumed"]["api/availability"] is not None
    paths = {path for path, _ in seen}
    assert paths & {"/api/v1/read", "/api/v1/query_range"}, paths
    assert all(auth == f"Bearer {TOKEN}" for _, auth in seen)


def test_evaluate_reads_prometheus_with_basic_auth(
    guarded: tuple[str, list[tuple[str, str]]], specs: Path, secrets: dict[str, Path]
) -> None:
    url, seen = guarded
    seen.clear()
    result = invoke(
        *("evaluate", "--specs", str(specs), "--prometheus-url", url, "--at", str(AT)),
        *("--basic-auth-user", USER, "--basic-auth-password-file", str(secrets["password"])),
    )
    assert result.exit_code == ExitCode.OK, result.output
    expected = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    assert seen and all(auth == expected for _, auth in seen)
    assert PASSWORD not in result.output


def test_report_rebuilds_from_prometheus_behind_a_bearer_token(
    guarded: tuple[str, list[tuple[str, str]]], specs: Path, secrets: dict[str, Path]
) -> None:
    url, seen = guarded
    args = [
        *("report", "--month", month_of(AT), "--format", "json"),
        *("--from-prometheus", url, "--specs", str(specs)),
    ]
    assert invoke(*args).exit_code == ExitCode.UNAVAILABLE
    seen.clear()
    result = invoke(*args, "--bearer-token-file", str(secrets["token"]))
    assert result.exit_code == ExitCode.OK, result.output
    assert json.loads(result.stdout)["slos"], result.stdout
    assert seen and all(auth == f"Bearer {TOKEN}" for _, auth in seen)


def test_suggest_sends_the_bearer_token(
    guarded: tuple[str, list[tuple[str, str]]], specs: Path, secrets: dict[str, Path]
) -> None:
    url, seen = guarded
    seen.clear()
    result = invoke(
        *("suggest", "--specs", str(specs), "--prometheus-url", url, "--format", "json"),
        *("--days", "4", "--end", str(AT), "--workers", "1"),
        *("--bearer-token-file", str(secrets["token"])),
    )
    assert result.exit_code == ExitCode.OK, result.output
    assert json.loads(result.stdout)["slos"]
    assert seen and all(auth == f"Bearer {TOKEN}" for _, auth in seen)


@pytest.mark.parametrize("command", ["evaluate", "backtest"])
def test_prometheus_behind_mutual_tls(
    command: str, mtls: tuple[str, dict[str, Path]], specs: Path
) -> None:
    url, files = mtls
    args = [command, "--specs", str(specs), "--prometheus-url", url, "--format", "json"]
    if command == "backtest":
        args += ["--start", str(START + 5 * HOUR), "--end", str(AT), "--warmup", "3d"]
        args += ["--workers", "1"]
    else:
        args += ["--at", str(AT)]
    tls = ["--ca-bundle", str(files["ca"])]
    client = ["--client-cert", str(files["cert"]), "--client-key", str(files["key"])]
    # Unknown CA, or no client certificate: the handshake fails, nothing is read (exit 3).
    assert invoke(*args, *client, "--timeout", "5s").exit_code == ExitCode.UNAVAILABLE
    assert invoke(*args, *tls, "--timeout", "5s").exit_code == ExitCode.UNAVAILABLE
    result = invoke(*args, *tls, *client)
    assert result.exit_code == ExitCode.OK, result.output
    assert json.loads(result.stdout)


def test_a_key_without_its_certificate_is_a_usage_error(specs: Path, tmp_path: Path) -> None:
    key = tmp_path / "client.key"
    key.write_text("not used\n")
    for command in ("evaluate", "backtest"):
        extra = ["--start", "1704067200", "--end", "1704153600"] if command == "backtest" else []
        result = invoke(
            *(command, "--specs", str(specs), "--prometheus-url", "https://127.0.0.1:9"),
            *extra,
            *("--client-key", str(key)),
        )
        assert result.exit_code == ExitCode.USAGE, (command, result.output)
        assert "client_key needs client_cert" in result.output


# ------------------------------------------------------------------ --help


@pytest.mark.parametrize("path", every_command(), ids=lambda p: " ".join(p) or "slo-engine")
def test_help_shows_no_internal_type_names_and_every_flag_has_help(path: tuple[str, ...]) -> None:
    result = invoke(*path, "--help", env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    for name in INTERNAL_NAMES:
        assert name not in result.output, f"{' '.join(path)} --help shows {name!r}"
    for param in command_at(path).params:
        if param.hidden:
            continue
        assert (param.help or "").strip(), f"{' '.join(path)}: {param.name} has no help text"
        if getattr(param, "param_type_name", "") == "option":
            assert param.opts[0] in result.output, (path, param.opts[0])
