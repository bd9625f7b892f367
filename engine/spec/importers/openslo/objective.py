"""The budget of an OpenSLO SLO: its budgeting method (Occurrences only), its one rolling
time window (the period) and its one objective (`target` or `targetPercent`)."""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

from engine.spec.document import Document, Origins
from engine.spec.errors import SpecError
from engine.spec.yaml_safety import shown

# OpenSLO's own duration shorthand; M, Q and Y are fixed lengths by its definition.
_DURATION = re.compile(r"^(\d+)([mhdwMQY])$")
_UNIT_DAYS = {"M": 30, "Q": 90, "Y": 365}


def _bare(value: Any) -> str:
    """A short word as written (`Timeslices`), anything else bounded by `shown()`."""
    short = isinstance(value, str) and value.isidentifier() and len(value) <= 40
    return value if short else shown(value)


def check_budgeting(doc: Document, spec: dict[str, Any]) -> list[SpecError]:
    method = spec.get("budgetingMethod")
    if method in ("Occurrences", "Timeslices"):  # Timeslices: timeslices.py
        return []
    if method is None:
        return [
            doc.error(
                ("spec",),
                "missing required key 'budgetingMethod'",
                "add budgetingMethod: Occurrences",
                at_key=True,
            )
        ]
    return [
        doc.error(
            ("spec", "budgetingMethod"),
            f"budgetingMethod {_bare(method)} is not supported",
            "slo-engine counts events (Occurrences) or good slices (Timeslices)",
        )
    ]


def convert_period(doc: Document, spec: dict[str, Any]) -> tuple[str | None, list[SpecError]]:
    windows = spec.get("timeWindow")
    if not windows:
        return None, [
            doc.error(
                ("spec",),
                "missing required key 'timeWindow'",
                "add timeWindow: [{duration: 28d, isRolling: true}]",
                at_key=True,
            )
        ]
    if not isinstance(windows, list):
        return None, [
            doc.error(
                ("spec", "timeWindow"),
                "timeWindow must be a list of one window",
                "write timeWindow: [{duration: 28d, isRolling: true}]",
            )
        ]
    if len(windows) > 1:
        return None, [
            doc.error(
                ("spec", "timeWindow", 1),
                "more than one timeWindow",
                "an SLO has one rolling period; keep one entry",
            )
        ]
    entry = windows[0]
    path = ("spec", "timeWindow", 0)
    if not isinstance(entry, dict):  # e.g. a file cut after `- `
        return None, [
            doc.error(
                path,
                "a timeWindow entry must be a mapping",
                "write - duration: 28d and isRolling: true under it",
            )
        ]
    if entry.get("calendar") is not None or entry.get("isRolling") is False:
        at = "calendar" if entry.get("calendar") is not None else "isRolling"
        return None, [
            doc.error(
                (*path, at),
                "calendar-aligned time windows are not supported",
                "use a rolling window: isRolling: true without calendar",
                at_key=True,
            )
        ]
    if entry.get("isRolling") is not True:
        return None, [
            doc.error(
                path,
                "timeWindow must say isRolling: true",
                "slo-engine evaluates rolling windows only",
            )
        ]
    duration = entry.get("duration")
    match = _DURATION.match(duration) if isinstance(duration, str) else None
    if match is None:
        return None, [
            doc.error(
                (*path, "duration"),
                f"{shown(duration)} is not an OpenSLO duration",
                "write a number and one unit of m h d w M Q Y, e.g. 28d",
            )
        ]
    count, unit = int(match.group(1)), match.group(2)
    if unit in _UNIT_DAYS:
        return f"{count * _UNIT_DAYS[unit]}d", []
    return f"{count}{unit}", []


def _the_objective(doc: Document, spec: dict[str, Any]) -> tuple[Any, list[SpecError]]:
    """The one objective mapping of `spec.objectives`, or why there is none."""
    objectives = spec.get("objectives")
    if not objectives:
        return None, [
            doc.error(
                ("spec",),
                "missing required key 'objectives'",
                "add objectives: [{target: 0.999}]",
                at_key=True,
            )
        ]
    if not isinstance(objectives, list):
        return None, [
            doc.error(
                ("spec", "objectives"),
                "objectives must be a list of one objective",
                "write objectives: [{target: 0.999}]",
            )
        ]
    if len(objectives) > 1:
        return None, [
            doc.error(
                ("spec", "objectives", 1),
                "more than one objective is not supported",
                "slo-engine has one objective per SLO; write one SLO document per target",
            )
        ]
    if not isinstance(objectives[0], dict):  # e.g. a file cut after `- `
        return None, [
            doc.error(
                ("spec", "objectives", 0),
                "an objective must be a mapping",
                "write - target: 0.999 (or targetPercent: 99.9)",
            )
        ]
    return objectives[0], []


def convert_objective(
    doc: Document, spec: dict[str, Any], origins: Origins
) -> tuple[Any, list[SpecError]]:
    objective, errors = _the_objective(doc, spec)
    if objective is None:
        return None, errors
    path = ("spec", "objectives", 0)
    for key, why in (
        ("op", "op/value belong to thresholdMetric, which is not supported"),
        ("value", "op/value belong to thresholdMetric, which is not supported"),
        ("timeSliceTarget", "time slices belong to budgetingMethod: Timeslices"),
        ("timeSliceWindow", "time slices belong to budgetingMethod: Timeslices"),
        ("indicator", "per-objective indicators (composite SLOs) are not supported"),
        ("indicatorRef", "per-objective indicators (composite SLOs) are not supported"),
        ("compositeWeight", "composite SLOs are not supported"),
    ):
        if key.startswith("timeSlice") and spec.get("budgetingMethod") == "Timeslices":
            continue  # converted by timeslices.py
        if key in objective:
            return None, [
                doc.error(
                    (*path, key),
                    f"objective.{key} is not supported",
                    why + "; remove it",
                    at_key=True,
                )
            ]
    if "target" in objective and "targetPercent" in objective:
        return None, [
            doc.error(
                (*path, "targetPercent"),
                "give target or targetPercent, not both",
                "keep one",
                at_key=True,
            )
        ]
    if "targetPercent" in objective:
        origins.add(("slos", 0, "objective"), doc, (*path, "targetPercent"))
        return objective["targetPercent"], []
    target = objective.get("target")
    if target is None:
        return None, [
            doc.error(
                path,
                "missing required key 'target'",
                "add target: 0.999 (a fraction) or targetPercent: 99.9",
            )
        ]
    origins.add(("slos", 0, "objective"), doc, (*path, "target"))
    if isinstance(target, bool) or not isinstance(target, int | float):
        return target, []  # the model explains what a number looks like
    if not (0 < target < 1):
        return None, [
            doc.error(
                (*path, "target"),
                f"target {target} is out of range",
                "OpenSLO's target is a fraction, 0 < target < 1 (write 0.999, or targetPercent: 99.9)",
            )
        ]
    # repr keeps what was typed (0.999, not 0.99899999…); ×100 in Decimal is exact.
    return str((Decimal(repr(target)) * 100).normalize()), []
