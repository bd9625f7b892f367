"""OpenSLO `budgetingMethod: Timeslices` → the native `timeslices:` of one SLO.

    budgetingMethod: Timeslices
    objectives:
      - target: 0.999            # share of good slices (the native objective)
        timeSliceTarget: 0.99    # a slice is good when its own ratio reaches this (0, 1]
        timeSliceWindow: 1m      # the slice: OpenSLO duration, or a bare number of minutes

becomes `timeslices: {slice: 1m, slice_target: 99}`. OpenSLO and slo-engine agree that a
slice is bad when its ratio is below the slice target and that the objective is the share of
good slices. Refused, with the key named: `RatioTimeslices` (a mean of slice ratios, another
quantity), a slice other than 1m or 5m, and a `timeSliceTarget` of 1 (every event of every
slice good: one failure makes a bad minute — write 0.9999 if that is meant).
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

from engine.spec.document import Document, Origins
from engine.spec.errors import SpecError
from engine.spec.yaml_safety import shown

TIMESLICES = "Timeslices"
_MINUTES = re.compile(r"^(\d+)m$")


def is_timeslices(spec: dict[str, Any]) -> bool:
    return spec.get("budgetingMethod") == TIMESLICES


def _slice(doc: Document, value: Any, path: tuple[Any, ...]) -> tuple[str | None, SpecError | None]:
    if isinstance(value, int) and not isinstance(value, bool):
        minutes = value  # OpenSLO allows a bare number of minutes
    else:
        match = _MINUTES.match(value) if isinstance(value, str) else None
        if match is None:
            return None, doc.error(
                path,
                f"timeSliceWindow {shown(value)} is not a supported slice",
                "slices are 1m or 5m (OpenSLO's m is a minute)",
            )
        minutes = int(match.group(1))
    return f"{minutes}m", None  # the native model names the supported lengths


def _target(doc: Document, value: Any, path: tuple[Any, ...]) -> tuple[Any, SpecError | None]:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return value, None  # the model explains what a number looks like
    if not (0 < value < 1):
        return None, doc.error(
            path,
            f"timeSliceTarget {value} is out of range",
            "a fraction of good events per slice, 0 < timeSliceTarget < 1 (e.g. 0.99); "
            "1 would make one failed request a bad slice — write 0.9999 if that is meant",
        )
    # repr keeps what was typed (0.99, not 0.98999…); ×100 in Decimal is exact.
    return str((Decimal(repr(value)) * 100).normalize()), None


def convert_timeslices(
    doc: Document, spec: dict[str, Any], origins: Origins
) -> tuple[dict[str, Any] | None, list[SpecError]]:
    """The native `timeslices` mapping of a Timeslices SLO, or why there is none. Call only
    when `is_timeslices(spec)`; the objective itself is converted as for Occurrences."""
    objectives = spec.get("objectives")
    if not isinstance(objectives, list) or not objectives or not isinstance(objectives[0], dict):
        return None, []  # convert_objective names what is wrong with the objectives
    objective, path = objectives[0], ("spec", "objectives", 0)
    errors: list[SpecError] = []
    for key in ("timeSliceTarget", "timeSliceWindow"):
        if key not in objective:
            errors.append(
                doc.error(
                    path,
                    f"missing required key '{key}'",
                    "Timeslices needs timeSliceTarget (e.g. 0.99) and timeSliceWindow (1m or 5m)",
                )
            )
    if errors:
        return None, errors
    target, target_error = _target(doc, objective["timeSliceTarget"], (*path, "timeSliceTarget"))
    window, window_error = _slice(doc, objective["timeSliceWindow"], (*path, "timeSliceWindow"))
    errors = [e for e in (target_error, window_error) if e is not None]
    if errors:
        return None, errors
    base = ("slos", 0, "timeslices")
    origins.add(base, doc, path)
    origins.add((*base, "slice"), doc, (*path, "timeSliceWindow"))
    origins.add((*base, "slice_target"), doc, (*path, "timeSliceTarget"))
    return {"slice": window, "slice_target": target}, []
