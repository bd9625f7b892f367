"""Dependency correlation in `backtest`, on a real Prometheus (issue 15 item 1): a dependent
paging minutes before its dependency, and three-service chains failing in the worst orders,
each end as one incident rooted at the dependency with one page — the same
`observe_cycle` the daemon runs, the specs' `depends_on` as the only edges."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from corpus.counters import Corpus, Job, write_corpus
from corpus.scenarios import BASE_ERRORS, HISTORY, MIN, START, T0, spec_yaml

from engine.backtest.replay import ReplayResult, fetch_history, make_plan, replay
from engine.demo.load import Incident as Failure
from engine.demo.openmetrics import open_openmetrics
from engine.incidents.incident import Incident
from engine.source.localprom import LocalPrometheus
from engine.source.prometheus import PrometheusSource
from engine.spec.durations import Duration
from engine.spec.loader import load_specs

pytestmark = pytest.mark.prometheus

HOUR = 3600
REPLAY = 2 * HOUR
END_OF_FAILURES = 70 * MIN  # every failure below ends here (replay offsets from START)


@dataclass(frozen=True)
class Chain:
    """Services failing at `fails_at` minutes into the replay, each depending on the next
    (`services[0]` → `services[1]` → …); the last is the root cause."""

    name: str
    services: tuple[str, ...]
    fails_at: tuple[float, ...]
    error_ratios: tuple[float, ...]
    # How often the incident moves to a deeper root (each time with an `updated`).
    reroots: int

    @property
    def root(self) -> str:
        return self.services[-1]

    def depends_on(self, service: str) -> str | None:
        i = self.services.index(service)
        return self.services[i + 1] if i + 1 < len(self.services) else None

    def jobs(self, seed: int) -> list[Job]:
        return [
            Job(
                service,
                rps=20,
                error_ratio=BASE_ERRORS,
                incidents=[
                    Failure(HISTORY + at * MIN, HISTORY + END_OF_FAILURES, error_ratio=ratio)
                ],
                seed=seed + k,
            )
            for k, (service, at, ratio) in enumerate(
                zip(self.services, self.fails_at, self.error_ratios, strict=True)
            )
        ]


CASES = (
    # The case: the dependent's page goes out when the 1-minute wait ends, the
    # dependency fails after it.
    Chain("dependent first", ("portal", "vault"), (20, 25), (0.4, 1.0), reroots=1),
    # web → api → db, the victim first and the root last: re-rooted twice.
    Chain("chain, victim first", ("web1", "api1", "db1"), (20, 23, 26), (0.4, 0.6, 1.0), 2),
    # The middle first, then the root, then the outermost victim.
    Chain("chain, middle first", ("web2", "api2", "db2"), (26, 20, 23), (0.4, 0.6, 1.0), 1),
)


@pytest.fixture(scope="module")
def result(module_prometheus_for, tmp_path_factory: pytest.TempPathFactory) -> ReplayResult:
    jobs = [job for k, case in enumerate(CASES) for job in case.jobs(seed=40 + 10 * k)]
    path = tmp_path_factory.mktemp("chains") / "chains.om"
    with open_openmetrics(path) as writer:
        write_corpus(writer, Corpus(start=T0, duration=HISTORY + REPLAY + HOUR, jobs=jobs))
    prometheus: LocalPrometheus = module_prometheus_for(path)
    spec_dir = tmp_path_factory.mktemp("specs")
    for case in CASES:
        for service in case.services:
            text = spec_yaml(service, "critical", case.depends_on(service))
            (spec_dir / f"{service}.yaml").write_text(text)
    loaded = load_specs([spec_dir])
    assert not loaded.errors, loaded.errors
    plan = make_plan(
        loaded.slos, START, START + REPLAY, Duration.parse("1m"), Duration(HISTORY * 1000)
    )
    rates = fetch_history(PrometheusSource(prometheus.url, timeout=60), loaded.slos, plan)
    assert not rates.errors
    return replay(loaded.slos, rates, plan)


def _notified(incident: Incident, event: str) -> list[float]:
    return [
        e.at
        for e in incident.timeline
        if e.kind == "notified" and e.data.get("event") == event and not e.data.get("repeat")
    ]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_one_incident_rooted_at_the_dependency_and_one_page(
    result: ReplayResult, case: Chain
) -> None:
    touched = [i for i in result.incidents if {i.service, *i.related_services} & set(case.services)]
    (incident,) = touched  # not even a merged one: the dependent's incident was re-rooted
    assert incident.merged_into is None
    assert incident.service == case.root
    assert sorted(incident.related_services) == sorted(case.services[:-1])
    assert sorted(incident.slo_ids) == sorted(f"{s}/availability" for s in case.services)
    (page,) = _notified(incident, "triggered")
    # What backtest counts for it: every notification under the one dedup key.
    assert result.notifications[incident.id] == 1 + len(_notified(incident, "updated"))
    first = min(case.fails_at)
    # Burn-rate detection takes a couple of minutes, then the 1-minute hold.
    assert START + first * MIN < page <= START + (first + 5) * MIN
    # The root cause's alert came after that page went out: too late for the hold-down,
    # so it is the correlation window that made this one incident — an `updated` on the
    # page's own dedup key each time the incident moved to a deeper root.
    reroots = [e.at for e in incident.timeline if e.data.get("rerooted_from")]
    assert reroots and min(reroots) > page
    assert [r for r in reroots if r in _notified(incident, "updated")] == reroots
    assert len(reroots) == case.reroots


def test_the_backtest_summary_counts_one_incident_per_outage(result: ReplayResult) -> None:
    summary = result.summary()
    assert summary["incidents"] == len(CASES)
    triggered = [t for i in result.incidents for t in _notified(i, "triggered")]
    assert len(triggered) == len(CASES)
