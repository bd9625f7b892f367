"""The daemon's backends: one Prometheus-API source per configured datasource, routed by
each SLO's `datasource:` (engine.source.routing), and the check that every SLO names a
datasource that exists — an unknown name is a spec error at load, never a silent fallback."""

from __future__ import annotations

import logging
import warnings
from collections.abc import Sequence
from pathlib import Path

from engine.daemon.config import DaemonConfig, DatasourceConfig
from engine.evaluation.source import EventSource
from engine.spec.models import SLO


def _str(path: Path | None) -> str | None:
    return None if path is None else str(path)


log = logging.getLogger("engine.daemon")


def prometheus_source(datasource: DatasourceConfig, name: str = "default") -> EventSource:
    from engine.source.prometheus import PrometheusSource

    tls = datasource.tls_config
    if tls is not None and tls.insecure_skip_verify:
        # Said once here, not by urllib3 on every request of every cycle.
        from urllib3.exceptions import InsecureRequestWarning

        warnings.filterwarnings("ignore", category=InsecureRequestWarning)
        log.warning(
            "datasource %s: tls_config.insecure_skip_verify is on — its certificate is not "
            "checked, so anyone on the path can answer in its name",
            name,
        )
    auth = datasource.authorization
    return PrometheusSource(
        datasource.url,
        timeout=datasource.query_timeout.seconds,
        retries=datasource.query_retries,
        bearer_token_file=_str(datasource.bearer_token_file),
        authorization_type=auth.type if auth is not None else "Bearer",
        basic_auth_user=datasource.basic_auth_user,
        basic_auth_password_file=_str(datasource.basic_auth_password_file),
        ca_bundle=_str(datasource.ca_bundle),
        client_cert=_str(datasource.client_cert),
        client_key=_str(datasource.client_key),
        server_name=tls.server_name if tls is not None else None,
        insecure_skip_verify=tls is not None and tls.insecure_skip_verify,
        batch_size=datasource.batch_size,
        concurrency=datasource.concurrency,
    )


def configured_source(config: DaemonConfig) -> EventSource:
    """One backend: its source as is (behaviour of a single-Prometheus daemon unchanged);
    several: a routed source over them."""
    datasources = config.all_datasources()
    if len(datasources) == 1:
        ((name, only),) = datasources.items()
        return prometheus_source(only, name)
    from engine.source.routing import RoutedSource

    default = config.default_datasource_name
    return RoutedSource(
        {name: prometheus_source(ds, name) for name, ds in datasources.items()},
        lambda slo: slo.datasource or default,
    )


def datasource_problems(slos: Sequence[SLO], config: DaemonConfig) -> list[str]:
    """`<spec file>: <slo>: datasource 'x' is not configured — ...` per SLO naming an
    unknown datasource."""
    known = config.all_datasources()
    problems = []
    for slo in slos:
        if slo.datasource is not None and slo.datasource not in known:
            where = f"{slo.source}: " if slo.source else ""
            problems.append(
                f"{where}{slo.id}: datasource {slo.datasource!r} is not configured — add it "
                f"under datasources: in the daemon config (configured: "
                f"{', '.join(sorted(known))})"
            )
    return problems
