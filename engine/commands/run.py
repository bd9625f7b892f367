"""`slo-engine run`: the daemon. Evaluates on a schedule, keeps incidents, notifies, serves the
HTTP API, /metrics and the status page.

Exit codes: 0 after a clean shutdown (SIGTERM/SIGINT); 1 invalid specs at start-up; 2 an
unusable configuration (bad key, a URL with credentials in it, a missing or unreadable
secret file, port in use, store unusable).

Every log line of the process goes through `engine.redact` (URL credentials and secret
query parameters removed), uvicorn's access log included.
"""

from __future__ import annotations

import logging
import signal
import socket
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from engine.commands import options
from engine.commands.app import app
from engine.commands.env_flags import EnvFlagsCommand
from engine.commands.exit_codes import ExitCode
from engine.commands.log_choices import LogFormatChoice, LogLevel

if TYPE_CHECKING:
    import uvicorn

    from engine.api.security import ApiToken
    from engine.daemon.runtime import Runtime
    from engine.daemon.scheduler import DaemonScheduler

# docs/cli.md: a configuration key is a flag (every flag is one), so a bad one is usage.
EXIT_INVALID_SPECS = ExitCode.FINDINGS
EXIT_BAD_CONFIG = ExitCode.USAGE

log = logging.getLogger("engine.daemon")


def _fail(message: str, code: int) -> typer.Exit:
    sys.stderr.write(f"error: {message}\n")
    return typer.Exit(code)


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


# The options of `run` (each a key of the config file; a flag given overrides the file).
ConfigFileOption = Annotated[
    Path | None, typer.Option("--config", help="YAML config file; flags override its keys.")
]
SpecsOption = Annotated[
    list[Path] | None,
    typer.Option("--specs", help="SLO spec file or directory (repeatable)."),
]
PrometheusUrlOption = Annotated[
    str | None, typer.Option("--prometheus-url", help="Prometheus base URL.")
]
StateDirOption = Annotated[
    Path | None,
    typer.Option("--state-dir", help="Directory for the incident store (SQLite)."),
]
ListenOption = Annotated[
    str | None, typer.Option("--listen", help="HOST:PORT of the HTTP API [127.0.0.1:8080].")
]
IntervalOption = Annotated[
    str | None,
    typer.Option("--interval", metavar="DURATION", help="Evaluation interval, e.g. 30s [30s]."),
]
WebhookOption = Annotated[
    list[str] | None,
    typer.Option("--webhook", help="Generic webhook receiver URL (repeatable)."),
]
ApiTokenFileOption = Annotated[
    Path | None,
    typer.Option(
        "--api-token-file",
        help="API tokens, one per line: TOKEN \\[ROLE[,ROLE]] \\[name=NAME]; roles read, "
        "responder, admin, security (read-only = read; no role: all of them).",
    ),
]
BlindAfterCyclesOption = Annotated[
    int | None,
    typer.Option(help="Failed cycles before the 'SLO evaluation blind' incident [3]."),
]
InvalidSpecsGraceOption = Annotated[
    str | None,
    typer.Option(
        metavar="DURATION",
        help="How long a reload may leave the specs invalid (last good set kept) before "
        "the 'SLO specs invalid' warning incident [10m].",
    ),
]
QueryTimeoutOption = Annotated[
    str | None,
    typer.Option(metavar="DURATION", help="Per-request timeout for Prometheus [10s]."),
]
ScrapeIntervalOption = Annotated[
    str | None,
    typer.Option(
        metavar="DURATION",
        help="How often Prometheus scrapes the SLIs' series; sets the finest evaluation "
        "step (≥ 2 scrapes per step: 60s → 2m30s) [15s].",
    ),
]
ConcurrencyOption = Annotated[
    int | None, typer.Option(help="Prometheus requests in flight at once [4].")
]
DeliveryIntervalOption = Annotated[
    str | None, typer.Option(metavar="DURATION", help="How often the outbox is delivered [5s].")
]
DashboardUrlOption = Annotated[
    str | None, typer.Option(help="Grafana base URL for dashboard links in alerts.")
]
ExternalUrlOption = Annotated[
    str | None, typer.Option(help="This daemon's public URL (links to the status page).")
]
# The same auth/TLS flags as every command that reads Prometheus.
BearerTokenFileOption = options.BearerTokenFile
BasicAuthUserOption = options.BasicAuthUser
BasicAuthPasswordFileOption = options.BasicAuthPasswordFile
CaBundleOption = options.CaBundle
ClientCertOption = options.ClientCert
ClientKeyOption = options.ClientKey
LogLevelOption = Annotated[LogLevel | None, typer.Option(help="Default info.")]
LogFormatOption = Annotated[LogFormatChoice | None, typer.Option(help="Log lines (default text).")]


@app.command(cls=EnvFlagsCommand)
def run(
    config_file: ConfigFileOption = None,
    specs: SpecsOption = None,
    prometheus_url: PrometheusUrlOption = None,
    state_dir: StateDirOption = None,
    listen: ListenOption = None,
    interval: IntervalOption = None,
    webhook: WebhookOption = None,
    api_token_file: ApiTokenFileOption = None,
    blind_after_cycles: BlindAfterCyclesOption = None,
    invalid_specs_grace: InvalidSpecsGraceOption = None,
    query_timeout: QueryTimeoutOption = None,
    scrape_interval: ScrapeIntervalOption = None,
    concurrency: ConcurrencyOption = None,
    delivery_interval: DeliveryIntervalOption = None,
    dashboard_url: DashboardUrlOption = None,
    external_url: ExternalUrlOption = None,
    bearer_token_file: BearerTokenFileOption = None,
    basic_auth_user: BasicAuthUserOption = None,
    basic_auth_password_file: BasicAuthPasswordFileOption = None,
    ca_bundle: CaBundleOption = None,
    client_cert: ClientCertOption = None,
    client_key: ClientKeyOption = None,
    log_level: LogLevelOption = None,
    log_format: LogFormatOption = None,
) -> None:
    """Run the daemon: scheduled evaluation, incidents, notifications and the HTTP API.

    Every flag is also read from SLO_ENGINE_<FLAG> (e.g. SLO_ENGINE_PROMETHEUS_URL); a flag
    wins over its variable, the variable over the config file.
    """
    from engine.daemon.config import ConfigError, load_config
    from engine.daemon.secret_files import missing_secret_files
    from engine.logs import chosen_format, configure_logging
    from engine.redact import redact_handlers

    overrides: dict[str, Any] = {
        "specs": [str(p) for p in specs] if specs else None,
        "prometheus_url": prometheus_url,
        "state_dir": _text(state_dir),
        "listen": listen,
        "interval": interval,
        "webhooks": webhook or None,
        "api_token_file": _text(api_token_file),
        "blind_after_cycles": blind_after_cycles,
        "invalid_specs_grace": invalid_specs_grace,
        "query_timeout": query_timeout,
        "scrape_interval": scrape_interval,
        "concurrency": concurrency,
        "delivery_interval": delivery_interval,
        "dashboard_url": dashboard_url,
        "external_url": external_url,
        "bearer_token_file": _text(bearer_token_file),
        "basic_auth_user": basic_auth_user,
        "basic_auth_password_file": _text(basic_auth_password_file),
        "ca_bundle": _text(ca_bundle),
        "client_cert": _text(client_cert),
        "client_key": _text(client_key),
        "log_level": log_level.value if log_level else None,
        # `slo-engine --log-format json run` too (the option before the command name).
        "log_format": log_format.value if log_format else chosen_format(),
    }
    deprecations: list[str] = []  # logged below, in the format the config asks for
    try:
        config = load_config(config_file, overrides, deprecations)
    except ConfigError as exc:
        raise _fail("invalid configuration:\n" + "\n".join(exc.problems), EXIT_BAD_CONFIG) from None
    missing = missing_secret_files(config)
    if missing:
        raise _fail("invalid configuration:\n" + "\n".join(missing), EXIT_BAD_CONFIG)
    configure_logging(getattr(logging, config.log_level.upper()), config.log_format)
    redact_handlers()
    for note in deprecations:
        log.warning("%s", note)
    raise typer.Exit(
        serve(config, config_dir=config_file.resolve().parent if config_file else None)
    )


def _text(path: Path | None) -> str | None:
    return None if path is None else str(path)


def serve(config: Any, config_dir: Path | None = None) -> int:
    """Start everything, block until SIGTERM/SIGINT, shut down in order; the exit code."""
    from engine.daemon.scheduler import DaemonScheduler
    from engine.redact import redact

    tokens = _api_tokens(config)
    if tokens is None:
        return EXIT_BAD_CONFIG
    try:
        sock = _bind(config.listen_host, config.listen_port)
    except OSError as exc:
        sys.stderr.write(f"error: cannot listen on {config.listen}: {exc.strerror}\n")
        return EXIT_BAD_CONFIG
    runtime = _start_runtime(config, config_dir, sock)
    if isinstance(runtime, int):
        return runtime

    try:
        server, api_thread = _api_server(runtime, tokens, config, sock)
    except ValueError as exc:  # TLS files unusable (TLSFilesError), no oidc.jwks_file
        sock.close()
        runtime.close()
        sys.stderr.write(f"error: {exc}\n")
        return EXIT_BAD_CONFIG
    stop = threading.Event()
    received: list[int] = []

    def on_signal(signum: int, _frame: Any) -> None:
        received.append(signum)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    scheduler = DaemonScheduler(runtime)
    api_thread.start()
    scheduler.start()
    host, port = sock.getsockname()[:2]
    log.info(
        "slo-engine running: API on %s://%s:%s, evaluating every %s against %s",
        "https" if config.tls_cert_file else "http",
        host,
        port,
        config.interval,
        redact(", ".join(f"{name} ({ds.url})" for name, ds in config.all_datasources().items())),
    )
    while not stop.wait(1.0):
        if not api_thread.is_alive():
            log.error("the HTTP server stopped unexpectedly; shutting down")
            break

    name = signal.Signals(received[0]).name if received else "HTTP server exit"
    _shut_down(name, config, runtime, scheduler, server, api_thread)
    return 0


def _api_tokens(config: Any) -> list[ApiToken] | None:
    """The API tokens (none: every change via the API is refused); None if unreadable."""
    from engine.api.security import TokenFileError, load_tokens

    tokens: list[ApiToken] = []
    if config.api_token_file is not None:
        try:
            tokens = load_tokens(Path(config.api_token_file))
        except TokenFileError as exc:
            sys.stderr.write(f"error: {exc}\n")
            return None
    if not tokens and config.oidc is None:
        log.warning(
            "no API tokens configured (--api-token-file) and no oidc: every API request "
            "but the probes (and /status, /metrics when public) is refused"
        )
    return tokens


def _start_runtime(config: Any, config_dir: Path | None, sock: socket.socket) -> Runtime | int:
    """The daemon's Runtime, or the exit code when it cannot start (`sock` is closed then)."""
    from engine.daemon.config import ConfigError as DaemonConfigError
    from engine.daemon.runtime import Runtime, SpecsInvalid
    from engine.notify.base import ConfigError as NotifierConfigError
    from engine.store.base import StoreError

    try:
        return Runtime(config, config_dir=config_dir)
    except SpecsInvalid as exc:
        sock.close()
        for error in exc.errors:
            sys.stderr.write(f"{error}\n")
        sys.stderr.write("error: the specs are invalid; fix them (see `slo-engine validate`)\n")
        return EXIT_INVALID_SPECS
    except (StoreError, NotifierConfigError, DaemonConfigError, OSError) as exc:
        sock.close()
        sys.stderr.write(f"error: {exc}\n")
        return EXIT_BAD_CONFIG


def _api_server(
    runtime: Runtime, tokens: list[ApiToken], config: Any, sock: socket.socket
) -> tuple[uvicorn.Server, threading.Thread]:
    """The HTTP API's uvicorn server and the (not yet started) thread serving it on `sock`;
    TLSFilesError (a ValueError) when the listener's certificate files are unusable."""
    import uvicorn

    from engine.api.app import create_app
    from engine.api.deps import Access
    from engine.api.server import server_config
    from engine.api.tls import ServerTLS

    tls = None
    if config.tls_cert_file is not None:
        tls = ServerTLS(config.tls_cert_file, config.tls_key_file, config.tls_client_ca_file)
    application = create_app(
        runtime,
        tokens,
        oidc=_verifier(config),
        access=Access(config.anonymous_reads, config.public_status_page, config.metrics_auth),
        docs_page=config.api_docs,
        idempotency_ttl_s=config.idempotency_ttl.seconds,
        audit_retention_s=config.audit_retention.seconds,
        hsts_max_age_s=config.hsts_max_age.seconds,
    )
    server = uvicorn.Server(
        server_config(
            application,
            trusted_proxies=config.trusted_proxies,
            access_log=config.log_level == "debug",
            tls=tls,
            log_config=None,
            lifespan="off",
            timeout_graceful_shutdown=1,
        )
    )
    # A daemon thread: a client holding a connection open must not delay the exit.
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name="api")
    thread.daemon = True
    return server, thread


def _verifier(config: Any) -> Any:
    """The OIDC token verifier with its keys fetched once; a missing jwks_file is a
    configuration error (ValueError), an unreachable provider only a warning: the daemon
    must alert even while the identity provider is down."""
    from engine.api.oidc import JwtVerifier

    if config.oidc is None:
        return None
    if config.oidc.jwks_file is not None and not Path(config.oidc.jwks_file).is_file():
        raise ValueError(f"oidc.jwks_file {config.oidc.jwks_file}: no such file")
    verifier = JwtVerifier(config.oidc)
    if not verifier.keys.warm():
        log.warning(
            "oidc: no signing keys from %s yet; bearer JWTs are refused until they can be read",
            config.oidc.jwks_url or config.oidc.jwks_file,
        )
    return verifier


def _shut_down(
    why: str,
    config: Any,
    runtime: Runtime,
    scheduler: DaemonScheduler,
    server: uvicorn.Server,
    api_thread: threading.Thread,
) -> None:
    """Within `shutdown_flush_timeout` and about a second more: no new jobs; deliver what is
    queued (every receiver in parallel; one that hangs is abandoned at the deadline) while a
    running cycle finishes; then stop the API and close."""
    log.info("%s: stopping the scheduler and finishing the running cycle", why)
    started = time.monotonic()
    budget = config.shutdown_flush_timeout.seconds
    scheduler.stop()
    flushed = runtime.flush(budget)
    if not runtime.wait_idle(started + budget - time.monotonic()):
        log.warning(
            "the running cycle did not finish within %.1fs; whatever it decided is decided "
            "again after restart",
            budget,
        )
    pending = runtime.store.counts().get("pending", 0)
    log.info(
        "outbox flushed: %d sent, %d failed, %d still pending (delivered after restart)",
        flushed.sent,
        flushed.retrying + flushed.dead,
        pending,
    )
    server.should_exit = True
    api_thread.join(timeout=1.0)
    runtime.close(wait=0.1)  # the flush already waited for the receivers
    log.info("stopped in %.1fs", time.monotonic() - started)
