"""The SRE Workbook's four measures of an alerting policy, against known incidents.

- **precision**: share of detections that overlap a real incident of their service;
- **recall**: share of real incidents overlapped by at least one detection;
- **detection time**: from an incident's start to the first detection overlapping it
  (0 when something was already firing);
- **reset time**: from an incident's end until the last detection overlapping it stopped
  (0 when it stopped earlier; a detection still open at the end of the replay counts until
  then, so the figure is a lower bound).

A "detection" is an alert interval (per severity) or an incident; an incident speaks for its
own service and for the services that joined it as related (dependency correlation).
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from engine.backtest.labels import LabeledIncident


@dataclass(frozen=True)
class Detection:
    services: frozenset[str]
    start: float
    end: float | None


@dataclass(frozen=True)
class PolicyScore:
    policy: str
    detections: int
    true_detections: int
    incidents: int
    detected: int
    detection_times: tuple[float, ...]
    reset_times: tuple[float, ...]

    @property
    def precision(self) -> float | None:
        return None if self.detections == 0 else self.true_detections / self.detections

    @property
    def recall(self) -> float | None:
        return None if self.incidents == 0 else self.detected / self.incidents

    def to_json(self) -> dict[str, Any]:
        return {
            "policy": self.policy,
            "detections": self.detections,
            "true_detections": self.true_detections,
            "labeled_incidents": self.incidents,
            "detected_incidents": self.detected,
            "precision": self.precision,
            "recall": self.recall,
            "detection_time": _stats(self.detection_times),
            "reset_time": _stats(self.reset_times),
        }


def _stats(values: Sequence[float]) -> dict[str, float] | None:
    if not values:
        return None
    return {
        "mean": statistics.fmean(values),
        "median": statistics.median(values),
        "max": max(values),
    }


def _overlaps(d: Detection, label: LabeledIncident, replay_end: float) -> bool:
    end = replay_end if d.end is None else d.end
    return label.service in d.services and d.start < label.end and end > label.start


def score_policy(
    policy: str,
    detections: Iterable[Detection],
    labels: Sequence[LabeledIncident],
    replay_start: float,
    replay_end: float,
) -> PolicyScore:
    """Score one policy's detections against the labels that overlap the replay."""
    found = list(detections)
    relevant = [lb for lb in labels if lb.start < replay_end and lb.end > replay_start]
    true_detections = sum(1 for d in found if any(_overlaps(d, lb, replay_end) for lb in relevant))
    detection_times: list[float] = []
    reset_times: list[float] = []
    detected = 0
    for label in relevant:
        hits = [d for d in found if _overlaps(d, label, replay_end)]
        if not hits:
            continue
        detected += 1
        detection_times.append(max(0.0, min(d.start for d in hits) - label.start))
        last = max(replay_end if d.end is None else d.end for d in hits)
        reset_times.append(max(0.0, last - label.end))
    return PolicyScore(
        policy=policy,
        detections=len(found),
        true_detections=true_detections,
        incidents=len(relevant),
        detected=detected,
        detection_times=tuple(detection_times),
        reset_times=tuple(reset_times),
    )
