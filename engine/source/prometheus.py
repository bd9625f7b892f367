"""Per-step event rates from a Prometheus server over its HTTP API, batched.

One cycle's cost must not grow with the number of SLOs times windows, so this adapter asks
for per-step *rates* only (windows are summed later, in numpy) and answers many SLOs with
one request: `engine.source.query_plan` splits the SLOs' expressions into atoms, shares
identical ones, groups those differing in one label into `sum by (label)` selectors, and
the parts are joined with `or`, each tagged by `label_replace(…, "__slo_id", "p<i>", …)`.
Long ranges are chunked so no request returns more than `max_points` points per series
(Prometheus refuses > 11,000) nor `max_response_points` points in all.

Failure semantics, because a failed query must never look like a healthy or dead service:
- 5xx, 429, timeouts and connection errors are retried with exponential backoff + jitter.
- 400/422 (a PromQL parse or execution error) are not retried: the batch is bisected until
  the offending SLOs are isolated; only those get an entry in `errors`, the rest get data.
- An SLO absent from the result has no data: its row stays NaN, never 0.
- An SLO whose bad events are total − good (`engine.spec.sli.derives_bad`) and whose good series
  is missing at a step with a total has no data at that step (bad *and* total NaN): the
  evaluation's rule "a missing bad rate with a known total is 0 bad events" is meant for
  error counters that do not exist yet, and must not make a missing good series look like a
  perfect SLO. For a classic latency SLI whose newest step with traffic has no bucket at the
  threshold, the SLO gets an `errors` entry naming the histogram, the threshold and the
  bounds the histogram does have: the threshold is not a bucket bound, which no amount of
  waiting fixes.
- When nothing could be fetched at all (refused connection, retries exhausted everywhere,
  authentication rejected), `fetch` raises `SourceUnavailable`.
"""

from __future__ import annotations

import logging
import math
import random
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import numpy as np
import requests
from prometheus_api_client import PrometheusApiClientException, PrometheusConnect
from urllib3.util.retry import Retry

from engine.evaluation.source import SourceUnavailable, StepRates
from engine.redact import redact
from engine.source.api_errors import parse_client_error, read_secret, seconds_param
from engine.source.outcome import FetchOutcome
from engine.source.partial import PartialResponse, PartialResponseWatch
from engine.source.post_query import PostQueries
from engine.source.query_plan import (
    Part,
    QueryPlan,
    or_tree,
    plan_queries,
    tagged,
    ungrouped,
)
from engine.source.response_rates import store_response
from engine.source.tls_session import ServerNameAdapter
from engine.spec.durations import Duration
from engine.spec.models import SLO, LatencySLI
from engine.spec.sli import bad_rate, derives_bad, missing_bucket_message, total_rate

if TYPE_CHECKING:  # the evaluation side of the one-shot path, loaded only when used
    from engine.evaluation.instant import WindowCounts

log = logging.getLogger(__name__)

_RETRYABLE_STATUS = frozenset({429, 500, 502, 503, 504})
# Prometheus answers 400 (bad_data: parse errors) and 422 (execution errors such as
# many-to-many matching): the query is wrong, asking again gives the same answer.
_PROMQL_ERROR_STATUS = frozenset({400, 422})
# Distinct (SLO set, step) plans remembered: one per cache tier, plus room for reloads.
_PLANS_KEPT = 8
# Opaque expressions × points per series in one `or` request (see `_batches`).
_OPAQUE_POINTS_PER_REQUEST = 4000
# Bucket bounds named in a "threshold is not a bucket" error, at most.
_BOUNDS_SHOWN = 30


def _bound_order(le: str) -> tuple[float, str]:
    try:
        return float(le), le
    except ValueError:
        return math.inf, le


class _PromQLError(Exception):
    """Prometheus rejected the query (HTTP 400/422)."""


class _Unreachable(Exception):
    """The request failed after every retry (or cannot succeed: auth, TLS)."""

    def __init__(self, message: str, fatal: bool = False) -> None:
        # Messages quote the URL and library errors: never a credential (engine/redact.py).
        super().__init__(redact(message))
        # Fatal: the server refused us outright, so no other request will fare better.
        self.fatal = fatal


class PrometheusSource:
    """`EventSource` over the Prometheus HTTP API (prometheus-api-client underneath)."""

    # Atoms (component series: an SLO has 2–4) per request, and per `sum by` group; tuned
    # with bench/bench_evaluate.py --batch-sweep.
    DEFAULT_BATCH_SIZE = 1000

    def __init__(
        self,
        url: str,
        timeout: float = 10,
        retries: int = 3,
        bearer_token_file: str | None = None,
        basic_auth_user: str | None = None,
        basic_auth_password_file: str | None = None,
        ca_bundle: str | None = None,
        client_cert: str | None = None,
        client_key: str | None = None,
        authorization_type: str = "Bearer",
        server_name: str | None = None,
        insecure_skip_verify: bool = False,
        batch_size: int = DEFAULT_BATCH_SIZE,
        max_points: int = 11000,
        concurrency: int = 4,
        max_query_chars: int = 200_000,
        max_response_points: int = 250_000,
        backoff: float = 0.5,
        sleep: Callable[[float], None] = time.sleep,
        remote_read: bool = True,
        remote_read_min_steps: int = 60,
    ) -> None:
        if basic_auth_password_file is not None and basic_auth_user is None:
            raise ValueError("basic_auth_password_file needs basic_auth_user")
        if client_key is not None and client_cert is None:
            raise ValueError("client_key needs client_cert")
        self.url = url.rstrip("/")
        self.timeout = timeout
        # Prometheus wants a duration ("10.0s" is not one); whole milliseconds always parse.
        self._timeout_param = f"{max(1, round(timeout * 1000))}ms"
        self.retries = retries
        self.batch_size = batch_size
        self.max_points = max_points
        self.concurrency = concurrency
        self.max_query_chars = max_query_chars
        self.max_response_points = max_response_points
        self.backoff = backoff
        self._sleep = sleep
        self._bearer_token_file = bearer_token_file
        self._authorization_type = authorization_type
        self._basic_auth_user = basic_auth_user
        self._basic_auth_password_file = basic_auth_password_file
        # HTTP requests sent, retries included: what the benchmark reports per cycle.
        self.http_requests = 0
        # Fetches of at least this many steps read raw samples (engine.source.remote_read);
        # SLO histories fetched per method, and why remote read was last given up.
        self.remote_read, self.remote_read_min_steps = remote_read, remote_read_min_steps
        self.history_slos: dict[str, int] = {}
        self.history_fallback: str | None = None
        self.history_fallback_permanent = False
        # Ask remote read for stored chunks (engine.source.xor_chunks) until one cannot be
        # decoded; then SAMPLES for good.
        self.remote_read_chunks = True
        self._lock = threading.Lock()

        session = requests.Session()
        session.verify = False if insecure_skip_verify else (ca_bundle or True)
        if client_cert is not None:
            session.cert = (client_cert, client_key) if client_key else client_cert
        # Retries are ours (with jitter, and never on 400/422); the client's must stay off.
        no_retry = Retry(total=None, connect=0, read=0, status=0, other=0, redirect=5)
        self._partial = PartialResponseWatch()
        self._partial.install(session)
        self._client = PrometheusConnect(
            url=self.url, retry=no_retry, session=session, timeout=timeout
        )
        if server_name:  # replaces the adapter the client mounted for this URL
            session.mount(self.url, ServerNameAdapter(server_name, max_retries=no_retry))
        # Queries go in POST bodies: a batched query of many kilobytes in the URL costs
        # per-character encoding in requests/urllib3 and can breach URL length limits
        # (engine.source.post_query); a backend refusing POST gets the client's GET.
        self._queries = PostQueries(self._client, count=self._count)
        self._plans: dict[tuple[tuple[str, str], ...], QueryPlan] = {}

    # -- auth ---------------------------------------------------------------------------

    def _refresh_auth(self) -> None:
        """Re-read secrets once per fetch: mounted tokens rotate under long-running daemons."""
        headers: dict[str, str] = {}
        token = read_secret(self._bearer_token_file, "bearer token")
        if token is not None:
            headers["Authorization"] = f"{self._authorization_type} {token}"
        self._client.headers = headers or None
        password = read_secret(self._basic_auth_password_file, "basic auth password")
        if self._basic_auth_user is not None:
            self._client.auth = (self._basic_auth_user, password or "")

    # -- one HTTP request, retried ---------------------------------------------------------

    def _count(self) -> None:
        with self._lock:
            self.http_requests += 1

    def _query_range(self, query: str, start: float, end: float, step: Duration) -> list[dict]:
        params = {
            # Explicit, unrounded times: the client would round start/end to whole seconds.
            "start": seconds_param(start),
            "end": seconds_param(end),
            "step": format(step.decimal_seconds.normalize(), "f"),
            # Let Prometheus abandon the query when we stop waiting for it.
            "timeout": self._timeout_param,
        }
        when = datetime.fromtimestamp(start, UTC)
        return self._with_retries(
            lambda: self._queries.query(
                "query_range",
                {"query": query, **params},
                lambda: self._client.custom_query_range(
                    query, start_time=when, end_time=when, step=params["step"], params=params
                ),
            )
        )

    def query_instant(self, query: str, at: float) -> list[dict]:
        """One instant query at an explicit time (used by the naive baseline and tests)."""
        params = {"time": seconds_param(at), "timeout": self._timeout_param}
        return self._with_retries(
            lambda: self._queries.query(
                "query",
                {"query": query, **params},
                lambda: self._client.custom_query(query, params=params),
            )
        )

    def _with_retries(self, call: Callable[[], list[dict]]) -> list[dict]:
        last = ""
        refused = False
        for attempt in range(self.retries + 1):
            if attempt:
                # Exponential backoff with full jitter, so many clients do not retry in step.
                self._sleep(random.uniform(0, self.backoff * 2 ** (attempt - 1)))
            self._count()
            self._partial.reset()
            try:
                result = call()
                self._partial.check()
                return result
            except PrometheusApiClientException as exc:
                status, message = parse_client_error(exc)
                if status in _PROMQL_ERROR_STATUS:
                    raise _PromQLError(message) from None
                if status in (401, 403):
                    raise _Unreachable(
                        f"Prometheus refused the credentials (HTTP {status}): {message}",
                        fatal=True,
                    ) from None
                if status not in _RETRYABLE_STATUS:
                    raise _Unreachable(f"HTTP {status}: {message}", fatal=True) from None
                last, refused = message, False
            except requests.exceptions.SSLError as exc:
                raise _Unreachable(f"TLS error talking to {self.url}: {exc}", fatal=True) from None
            except requests.exceptions.Timeout:
                last, refused = f"timed out after {self.timeout}s", False
            except requests.exceptions.ConnectionError as exc:
                last, refused = f"cannot connect to {self.url}: {type(exc).__name__}", True
            except (ValueError, KeyError) as exc:
                # A 200 whose body is not Prometheus' JSON envelope (a proxy's HTML page).
                raise _Unreachable(f"unexpected response from {self.url}: {exc}") from None
            log.debug("prometheus request failed (attempt %d): %s", attempt + 1, last)
        # A server that refused every connection is down for the other requests too; a slow
        # or overloaded one may still answer smaller batches.
        raise _Unreachable(f"{last} (gave up after {self.retries + 1} attempts)", fatal=refused)

    # -- fetch ---------------------------------------------------------------------------

    def fetch(self, slos: Sequence[SLO], step: Duration, start: float, end: float) -> StepRates:
        """Rates at `start + k·step` for every k with `start + k·step ≤ end` (both ends
        included, like a Prometheus range query); each point averages `(t − step, t]`."""
        if step.ms <= 0:
            raise ValueError("step must be positive")
        step_s = step.seconds
        n_steps = 0 if end < start else math.floor((end - start) / step_s + 1e-9) + 1
        times = start + step_s * np.arange(n_steps, dtype=np.float64)
        if not slos or n_steps == 0:
            empty = np.full((len(slos), n_steps), np.nan)
            return StepRates(step=step, times=times, bad=empty, total=empty.copy(), errors={})
        if self.remote_read and n_steps >= self.remote_read_min_steps:
            from engine.source.remote_read import read_history

            return read_history(self, slos, step, times)
        return self.query_range_rates(slos, step, times)

    def query_range_rates(
        self, slos: Sequence[SLO], step: Duration, times: np.ndarray
    ) -> StepRates:
        """`fetch` at `times` (non-empty, on the step grid) over query_range."""
        n_steps = times.size
        self._refresh_auth()
        plan, scales = self._plan(slos, step)
        rates = np.full((len(plan.atoms), n_steps), np.nan)
        outcome = FetchOutcome()
        tasks = []
        for batch in self._batches(list(plan.parts), min(n_steps, self.max_points)):
            series = sum(len(part.answers) for part in batch)
            # Bound each response too: points per series and points per request.
            length = max(1, min(self.max_points, self.max_response_points // max(1, series)))
            tasks += [(batch, i0, min(i0 + length, n_steps)) for i0 in range(0, n_steps, length)]

        def run(task: tuple[list[Part], int, int]) -> None:
            batch, i0, i1 = task
            if outcome.fatal is not None:
                outcome.fail(batch, outcome.fatal)
                return
            self._run_batch(plan, batch, times, i0, i1, step, rates, outcome)

        with ThreadPoolExecutor(max_workers=max(1, self.concurrency)) as pool:
            list(pool.map(run, tasks))

        if outcome.unreachable and outcome.succeeded == 0:
            raise SourceUnavailable(outcome.fatal or outcome.first_unreachable)
        bad = plan.bad.combine(rates, len(slos)) * scales[:, None]
        total = plan.total.combine(rates, len(slos)) * scales[:, None]
        errors: dict[str, str] = {}
        for atom, message in sorted(outcome.errors.items()):
            for row in sorted(plan.rows_using({atom})):
                errors.setdefault(slos[row].id, message)
                bad[row, :] = np.nan
                total[row, :] = np.nan
        self._missing_good(slos, times, bad, total, errors)
        return StepRates(step=step, times=times, bad=bad, total=total, errors=errors)

    def window_counts(
        self, slos: Sequence[SLO], windows: Sequence[Duration], at: float
    ) -> WindowCounts:
        """Events over each whole window ending at `at`: one instant query per batch of
        atoms and window (engine.source.window_counts; the one-shot `evaluate` path)."""
        from engine.source.window_counts import window_counts

        return window_counts(self, slos, windows, at)

    def _missing_good(
        self,
        slos: Sequence[SLO],
        times: np.ndarray,
        bad: np.ndarray,
        total: np.ndarray,
        errors: dict[str, str],
    ) -> None:
        """Steps where a derived bad rate (total − good) is missing but the total is not.

        PromQL's `(total) - (good)` is empty exactly when one side is, so these are the steps
        whose good series is missing. They become no data (never 0 bad, never all bad: the
        step could be a wrong selector as well as every request failing); a classic latency
        SLI whose newest step with traffic has no bucket is an error (module docstring).
        Modifies the arrays and `errors` in place.
        """
        derived = np.fromiter((derives_bad(s.sli) for s in slos), dtype=bool, count=len(slos))
        if not derived.any():
            return
        gap = derived[:, None] & np.isnan(bad) & ~np.isnan(total)
        for row in np.flatnonzero(gap.any(axis=1)).tolist():
            latency = slos[row].sli.latency
            newest = int(np.flatnonzero(~np.isnan(total[row]))[-1])
            if latency is not None and not latency.native and gap[row, newest]:
                bounds = self._bucket_bounds(latency, float(times[newest]))
                errors[slos[row].id] = missing_bucket_message(latency, bounds)
                bad[row, :] = np.nan
                total[row, :] = np.nan
            else:
                total[row, gap[row]] = np.nan

    def _bucket_bounds(self, sli: LatencySLI, at: float) -> tuple[str, ...]:
        """The `le` values the SLI's histogram has at `at`, to name in the error message;
        empty when they cannot be fetched (the message is still actionable without)."""
        selector = f"{{{sli.selector}}}" if sli.selector else ""
        try:
            result = self.query_instant(f"count by (le) ({sli.histogram}_bucket{selector})", at)
        except (_PromQLError, _Unreachable):
            return ()
        values = {str(series.get("metric", {}).get("le", "")) for series in result}
        return tuple(sorted((v for v in values if v), key=_bound_order))[:_BOUNDS_SHOWN]

    def _plan(self, slos: Sequence[SLO], step: Duration) -> tuple[QueryPlan, np.ndarray]:
        # Availability SLIs count samples with *_over_time, whose ranges include both ends
        # in Prometheus 2.x: with [step], a sample on a step boundary would be counted in two
        # adjacent steps. One millisecond less makes the steps partition the samples.
        sample_window = Duration(step.ms - 1) if step.ms > 1 else step
        scales = np.ones(len(slos))
        pairs = []
        for row, slo in enumerate(slos):
            window = step
            if slo.sli.availability is not None:
                window = sample_window
                # Rates over the shortened window, as events per second of the whole step.
                scales[row] = sample_window.seconds / step.seconds
            pairs.append((bad_rate(slo.sli, window), total_rate(slo.sli, window)))
        # Planning parses every expression; a daemon asks for the same SLOs and steps every
        # cycle, so plans are kept (keyed by the expressions themselves: a reloaded spec
        # with new queries gets a new plan).
        key = tuple(pairs)
        plan = self._plans.get(key)
        if plan is None:
            plan = plan_queries(pairs, group_size=self.batch_size)
            with self._lock:
                if len(self._plans) >= _PLANS_KEPT:
                    self._plans.pop(next(iter(self._plans)))
                self._plans[key] = plan
        return plan, scales

    def _batches(self, parts: list[Part], points: int) -> list[list[Part]]:
        """Requests of at most `batch_size` grouped atoms, or a few opaque expressions.

        Opaque expressions are joined with `or`, whose cost in Prometheus 2.x grows faster
        than linearly with their number and linearly with the points per series, so long
        ranges (cold start) get small batches and the one-step warm refreshes big ones.
        """
        opaque_limit = max(20, min(200, _OPAQUE_POINTS_PER_REQUEST // max(1, points)))
        batches: list[list[Part]] = []
        for kind in (False, True):
            current: list[Part] = []
            weight = size = 0
            for part in (p for p in parts if p.opaque == kind):
                cost = len(part.expr) + 60
                units = len(part.atoms) if not kind else max(1, -(-self.batch_size // opaque_limit))
                if current and (
                    weight + units > self.batch_size or size + cost > self.max_query_chars
                ):
                    batches.append(current)
                    current, weight, size = [], 0, 0
                current.append(part)
                weight += units
                size += cost
            if current:
                batches.append(current)
        return batches

    def _run_batch(
        self,
        plan: QueryPlan,
        batch: list[Part],
        times: np.ndarray,
        i0: int,
        i1: int,
        step: Duration | None,
        rates: np.ndarray,
        outcome: FetchOutcome,
    ) -> None:
        """Ask one batch for the points i0 … i1−1 of `times` and store them in `rates`;
        `step` None asks one instant query at `times[i0]` (whole-window counts)."""
        query = or_tree([tagged(part, f"p{k}") for k, part in enumerate(batch)])
        try:
            if step is None:
                result = self.query_instant(query, times[i0])
            else:
                result = self._query_range(query, times[i0], times[i1 - 1], step)
        except _PromQLError as exc:
            if len(batch) == 1 and batch[0].group_label is None and not batch[0].derived:
                outcome.error(batch[0].atoms[0], f"PromQL error: {exc}")
                return
            if len(batch) == 1:
                # A group failed: ask its atoms as written, so the culprit is isolated.
                part = batch[0]
                retry = [ungrouped(a, plan.atoms[a]) for a in part.answers]
            else:
                retry = batch
            # Bisect so one broken SLO does not blind the others.
            middle = len(retry) // 2
            for half in (retry[:middle], retry[middle:]):
                self._run_batch(plan, half, times, i0, i1, step, rates, outcome)
            return
        except _Unreachable as exc:
            outcome.unreachable_batch(batch, str(exc), exc.fatal)
            return
        except PartialResponse as exc:
            outcome.success()  # the backend answers; its data for these SLOs is incomplete
            for part in batch:
                for atom in part.answers:
                    outcome.error(atom, redact(f"partial response from {self.url}: {exc}"))
            return
        outcome.success()
        store_response(result, batch, times, i0, i1, step, rates)
