"""The alert policies of an SLO compared by the SRE Workbook's four measures.

Detections are the page alerts each policy would have fired (`engine.advice.replays`);
they are scored by the backtest's `score_policy` (precision, recall, detection and reset
time) against the known incidents of the SLO's service: the `--labels` file when given —
then it is the truth for every service, so a page of a service without labelled incidents
is a false page — or else the incidents the incident engine opened when the backtest
replayed the current specs (`reference_incidents`).

The best policy catches the most known incidents (recall), then sends the fewest false
pages, then detects sooner and resets sooner; on a tie the current policy stays.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from engine.backtest.labels import LabeledIncident
from engine.backtest.metrics import Detection, PolicyScore, score_policy
from engine.backtest.result import ReplayResult

Interval = tuple[float, float | None]


@dataclass(frozen=True)
class PolicyRow:
    """One policy's figures for one SLO (or the whole fleet)."""

    policy: str
    score: PolicyScore
    pages: int
    tickets: int

    @property
    def false_pages(self) -> int:
        return self.score.detections - self.score.true_detections

    def rank(self) -> tuple[float, int, float, float]:
        recall = self.score.recall
        detection = _median(self.score.detection_times)
        reset = _median(self.score.reset_times)
        return (-(recall or 0.0), self.false_pages, detection, reset)

    def to_json(self) -> dict[str, object]:
        return {
            **self.score.to_json(),
            "pages": self.pages,
            "tickets": self.tickets,
            "false_pages": self.false_pages,
        }


@dataclass(frozen=True)
class PolicyChoice:
    rows: list[PolicyRow]
    best: PolicyRow
    reason: str

    def to_json(self) -> dict[str, object]:
        return {
            "recommended": self.best.policy,
            "reason": self.reason,
            "policies": [r.to_json() for r in self.rows],
        }


def _median(values: Sequence[float]) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def reference_incidents(result: ReplayResult) -> list[LabeledIncident]:
    """The incidents a replay of the current specs opened, as labels of every service they
    speak for (their own and the correlated ones); open ones last until the replay's end."""
    out = []
    for incident in result.incidents:
        end = result.plan.end if incident.resolved_at is None else incident.resolved_at
        if end <= incident.opened_at:
            continue
        for service in dict.fromkeys([incident.service, *incident.related_services]):
            out.append(LabeledIncident(service, incident.opened_at, end, incident.id))
    return sorted(out, key=lambda x: (x.start, x.service))


def score_row(
    policy: str,
    service: str,
    intervals: Sequence[Interval],
    tickets: int,
    labels: Sequence[LabeledIncident],
    span: tuple[float, float],
) -> PolicyRow:
    detections = [Detection(frozenset({service}), start, end) for start, end in intervals]
    score = score_policy(policy, detections, labels, span[0], span[1])
    return PolicyRow(policy, score, len(detections), tickets)


def choose(rows: Sequence[PolicyRow]) -> PolicyChoice:
    """The best row by recall, false pages, detection and reset time; `rows[0]` (the
    current policy) wins ties."""
    ranked = sorted(enumerate(rows), key=lambda item: (item[1].rank(), item[0]))
    best = ranked[0][1]
    current = rows[0]
    if best is current:
        reason = "no alternative catches more known incidents with fewer false pages"
    else:
        reason = _why(best, current)
    return PolicyChoice(list(rows), best, reason)


def _fmt_recall(row: PolicyRow) -> str:
    s = row.score
    return f"{s.detected}/{s.incidents} known incidents" if s.incidents else "no known incidents"


def _why(best: PolicyRow, current: PolicyRow) -> str:
    parts = [
        f"{best.policy} catches {_fmt_recall(best)} with {best.false_pages} false page"
        f"{'s' * (best.false_pages != 1)}",
        f"current: {_fmt_recall(current)}, {current.false_pages} false page"
        f"{'s' * (current.false_pages != 1)}",
    ]
    det_best = _median(best.score.detection_times)
    det_current = _median(current.score.detection_times)
    if best.score.detection_times and current.score.detection_times and det_best != det_current:
        parts.append(f"median detection {det_best:.0f}s vs {det_current:.0f}s")
    return "; ".join(parts)


def fleet_rows(
    per_slo: Sequence[tuple[str, Sequence[PolicyRow | None], Sequence[Sequence[Interval]]]],
    names: Sequence[str],
    labels: Sequence[LabeledIncident],
    span: tuple[float, float],
) -> list[PolicyRow]:
    """Each policy over every SLO it applies to (the current one where it does not), scored
    against all known incidents at once — the backtest's fleet-wide measure."""
    out = []
    for v, name in enumerate(names):
        if v and all(rows[v] is None for _, rows, _ in per_slo):
            continue  # applies to no SLO: it would only repeat the current policy
        detections: list[Detection] = []
        tickets = 0
        for service, rows, intervals in per_slo:
            use = v if rows[v] is not None else 0
            row = rows[use]
            if row is None:
                continue
            tickets += row.tickets
            detections += [Detection(frozenset({service}), a, b) for a, b in intervals[use]]
        score = score_policy(name, detections, labels, span[0], span[1])
        out.append(PolicyRow(name, score, len(detections), tickets))
    return out
