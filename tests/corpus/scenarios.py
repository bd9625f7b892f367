"""The backtest corpus: one service (or pair) per case, all in one Prometheus, each case with
its labelled incidents — or none, when the right answer is silence.

Three days of history, then 36 replayed hours (from `START`, a Thursday 00:00 UTC) in which
each case's event happens at its own hour. Every service has the shipped alert policy and
anomaly detection on (traffic and errors), so a case also shows what anomaly detection adds
or gets wrong. Traffic is noisy (tests/corpus/counters.py): Poisson counts, a 10 % level
wander, daily and weekly waves, 0.01 % background errors.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from corpus.counters import Corpus, Job
from engine.backtest.labels import LabeledIncident
from engine.demo.load import Incident

MIN = 60
HOUR = 3600
DAY = 86_400
T0 = 1_704_067_200  # Monday 2024-01-01 00:00 UTC
HISTORY = 3 * DAY  # the longest alert window: the warm-up the replay reads
START = T0 + HISTORY  # Thursday 00:00
REPLAY = 36 * HOUR
END = START + REPLAY
BASE_ERRORS = 0.0001


@dataclass(frozen=True)
class Case:
    """One row of the corpus table."""

    name: str
    what: str
    jobs: tuple[Job, ...]
    # service → tier, and its dependencies.
    tiers: dict[str, str]
    depends_on: dict[str, str] = field(default_factory=dict)
    labels: tuple[LabeledIncident, ...] = ()

    @property
    def services(self) -> tuple[str, ...]:
        return tuple(job.name for job in self.jobs)


def _at(hours: float, minutes: float = 0.0) -> float:
    """Offset from the corpus start (T0) of `START + hours h + minutes min`."""
    return HISTORY + hours * HOUR + minutes * MIN


def _label(service: str, start: float, end: float, name: str) -> LabeledIncident:
    return LabeledIncident(service, T0 + start, T0 + end, name)


def _errors(start: float, end: float, ratio: float) -> Incident:
    return Incident(start, end, error_ratio=ratio)


def _outage() -> Case:
    a, b = _at(2), _at(2, 20)
    job = Job("checkout", rps=20, error_ratio=BASE_ERRORS, incidents=[_errors(a, b, 1.0)], seed=1)
    return Case(
        "outage",
        "100 % errors for 20 min (critical)",
        (job,),
        {"checkout": "critical"},
        labels=(_label("checkout", a, b, "outage"),),
    )


def _blip() -> Case:
    a = _at(4)
    job = Job(
        "search", rps=20, error_ratio=BASE_ERRORS, incidents=[_errors(a, a + 30, 1.0)], seed=2
    )
    return Case("blip", "100 % errors for 30 s: ~1 % of the budget", (job,), {"search": "critical"})


def _flapping() -> Case:
    first = _at(6)
    flaps = [_errors(first + k * 12 * MIN, first + k * 12 * MIN + 4 * MIN, 0.1) for k in range(5)]
    job = Job("cart", rps=20, error_ratio=BASE_ERRORS, incidents=flaps, seed=3)
    last = first + 4 * 12 * MIN + 4 * MIN
    return Case(
        "flapping",
        "10 % errors 4 min on, 8 min off, 5 times",
        (job,),
        {"cart": "important"},
        labels=(_label("cart", first, last, "flapping errors"),),
    )


def _slow_burn() -> Case:
    a, b = _at(1), _at(31)
    job = Job("reports", rps=5, error_ratio=BASE_ERRORS, incidents=[_errors(a, b, 0.005)], seed=4)
    return Case(
        "slow burn",
        "0.5 % errors (5× the budget rate) for 30 h",
        (job,),
        {"reports": "standard"},
        labels=(_label("reports", a, b, "slow burn"),),
    )


def _dependency(root_first: bool) -> Case:
    at = _at(8) if root_first else _at(10)
    root, dependent = ("ledger", "billing") if root_first else ("catalog", "shop")
    root_at, dependent_at = (at, at + 2 * MIN) if root_first else (at + 3 * MIN, at)
    end = at + 30 * MIN
    jobs = (
        Job(root, rps=20, error_ratio=BASE_ERRORS, incidents=[_errors(root_at, end, 1.0)], seed=5),
        Job(
            dependent,
            rps=20,
            error_ratio=BASE_ERRORS,
            incidents=[_errors(dependent_at, end, 0.4)],
            seed=6,
        ),
    )
    order = "dependency fails first" if root_first else "dependent fails first (3 min earlier)"
    return Case(
        "dependency, root first" if root_first else "dependency, dependent first",
        f"{root} down 30 min, {dependent} (depends on it) 40 % errors; {order}",
        jobs,
        {root: "critical", dependent: "critical"},
        depends_on={dependent: root},
        labels=(
            _label(root, root_at, end, f"{root} down"),
            _label(dependent, dependent_at, end, f"{dependent} failing with {root}"),
        ),
    )


def _dependency_late() -> Case:
    """The issue's case: the dependent's page went out (past the 1-minute hold) minutes
    before its dependency failed; the correlation window makes it one incident."""
    at = _at(26)
    root_at, end = at + 7 * MIN, at + 30 * MIN
    jobs = (
        Job("wallet", rps=20, error_ratio=BASE_ERRORS, incidents=[_errors(at, end, 0.4)], seed=15),
        Job(
            "keystore",
            rps=20,
            error_ratio=BASE_ERRORS,
            incidents=[_errors(root_at, end, 1.0)],
            seed=16,
        ),
    )
    return Case(
        "dependency, dependent pages first",
        "keystore down 23 min, wallet (depends on it) 40 % errors from 7 min earlier",
        jobs,
        {"keystore": "critical", "wallet": "critical"},
        depends_on={"wallet": "keystore"},
        labels=(
            _label("keystore", root_at, end, "keystore down"),
            _label("wallet", at, end, "wallet failing with keystore"),
        ),
    )


def _dependency_chain() -> Case:
    """web → api → database failing outermost first, 3 minutes apart: every step past the
    hold, all within the correlation window."""
    at = _at(32)
    end = at + 30 * MIN
    chain = (("kiosk", "pricing", 0.4), ("pricing", "stock", 0.6), ("stock", None, 1.0))
    jobs = tuple(
        Job(
            service,
            rps=20,
            error_ratio=BASE_ERRORS,
            incidents=[_errors(at + 3 * k * MIN, end, ratio)],
            seed=17 + k,
        )
        for k, (service, _, ratio) in enumerate(chain)
    )
    return Case(
        "dependency chain",
        "kiosk → pricing → stock fail in that order, 3 min apart, until stock recovers",
        jobs,
        {service: "critical" for service, _, _ in chain},
        depends_on={service: dep for service, dep, _ in chain if dep},
        labels=tuple(
            _label(service, at + 3 * k * MIN, end, f"{service} failing")
            for k, (service, _, _) in enumerate(chain)
        ),
    )


def _low_traffic() -> Case:
    a = _at(12)
    job = Job(
        "batch",
        rps=6 / HOUR,
        wander=0.0,
        daily=0.0,
        weekly=0.0,
        # With this seed one request falls in the window (at +4 min), the next at +12.75.
        incidents=[_errors(a + 3 * MIN, a + 9 * MIN, 1.0)],
        seed=8,
    )
    return Case(
        "low-traffic failure",
        "6 requests/hour, one of them fails",
        (job,),
        {"batch": "critical"},
    )


def _traffic_drop() -> Case:
    a, b = _at(14), _at(14, 45)
    job = Job(
        "gateway",
        rps=30,
        error_ratio=BASE_ERRORS,
        incidents=[Incident(a, b, rps_factor=0.1)],
        seed=9,
    )
    return Case(
        "traffic drop",
        "traffic falls to 10 % for 45 min, no errors",
        (job,),
        {"gateway": "critical"},
        labels=(_label("gateway", a, b, "traffic drop"),),
    )


def _restart_gap() -> Case:
    a, b = _at(16), _at(16, 40)
    job = Job(
        "payments",
        rps=20,
        error_ratio=BASE_ERRORS,
        incidents=[_errors(a, b, 1.0)],
        gaps=[(_at(16, 15), _at(16, 22))],
        seed=10,
    )
    return Case(
        "restart gap",
        "100 % errors 40 min; Prometheus restarts in it (7 min without scrapes)",
        (job,),
        {"payments": "critical"},
        labels=(_label("payments", a, b, "outage"),),
    )


def _counter_reset() -> Case:
    job = Job(
        "inventory",
        rps=20,
        error_ratio=BASE_ERRORS,
        restarts=[_at(18), _at(20) + 17],
        seed=11,
    )
    return Case(
        "counter reset",
        "the process restarts twice (counters from 0), healthy traffic",
        (job,),
        {"inventory": "critical"},
    )


def _scrape_gaps() -> Case:
    gaps = [
        (_at(22 + k, 3) + 7 * k, _at(22 + k, 3 + g) + 7 * k) for k, g in enumerate((2, 4, 5, 9))
    ]
    job = Job("profile", rps=20, error_ratio=BASE_ERRORS, gaps=gaps, seed=12)
    return Case(
        "scrape gaps",
        "no scrapes for 2, 4, 5 and 9 min, healthy traffic",
        (job,),
        {"profile": "critical"},
    )


def _target_vanishes() -> Case:
    job = Job(
        "recommend", rps=20, error_ratio=BASE_ERRORS, gaps=[(_at(27, 3), _at(27, 23))], seed=13
    )
    return Case(
        "target vanishes",
        "the only target is gone 20 min and comes back, healthy traffic",
        (job,),
        {"recommend": "critical"},
    )


def _relabel() -> Case:
    job = Job("notify", rps=20, error_ratio=BASE_ERRORS, relabel=(_at(29), _at(29, 5)), seed=14)
    return Case(
        "relabel duplicates",
        "a second label set counts the same requests for 5 min, healthy traffic",
        (job,),
        {"notify": "critical"},
    )


def cases() -> list[Case]:
    return [
        _outage(),
        _blip(),
        _flapping(),
        _slow_burn(),
        _dependency(root_first=True),
        _dependency(root_first=False),
        _dependency_late(),
        _dependency_chain(),
        _low_traffic(),
        _traffic_drop(),
        _restart_gap(),
        _counter_reset(),
        _scrape_gaps(),
        _target_vanishes(),
        _relabel(),
    ]


def corpus(selected: list[Case] | None = None, interval: int = 15) -> Corpus:
    jobs = [job for case in selected or cases() for job in case.jobs]
    return Corpus(start=T0, duration=HISTORY + REPLAY + HOUR, interval=interval, jobs=jobs)


def spec_yaml(service: str, tier: str, depends_on: str | None = None) -> str:
    """One 99.9 % availability SLO over the job's counters, anomaly detection on."""
    deps = f"depends_on: [{depends_on}]\n" if depends_on else ""
    return f"""apiVersion: slo-engine/v1
service: {service}
tier: {tier}
{deps}anomaly:
  enabled: true
  signals: [traffic, errors]
slos:
  - name: availability
    objective: 99.9
    sli:
      events:
        bad: sum(rate(http_requests_total{{job="{service}",code="500"}}[{{{{window}}}}]))
        total: sum(rate(http_requests_total{{job="{service}"}}[{{{{window}}}}]))
"""


def specs(selected: list[Case]) -> dict[str, str]:
    """File name → spec YAML for every service of the cases."""
    out = {}
    for case in selected:
        for service, tier in case.tiers.items():
            out[f"{service}.yaml"] = spec_yaml(service, tier, case.depends_on.get(service))
    return out


def labels(selected: list[Case]) -> list[LabeledIncident]:
    return sorted(
        (lb for case in selected for lb in case.labels), key=lambda x: (x.start, x.service)
    )
