"""One SLO's evaluation failing must not take the others down with it.

The evaluation is vectorised over every SLO at once, so an exception raised for one row
(a value no bound in `engine.spec.bounds` foresaw, a bug) would abort them all. When that
happens each SLO is evaluated on its own: the ones that fail are reported `error` with the
reason, the rest evaluate normally.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from engine.evaluation.burn import evaluate_window_events
from engine.evaluation.cache import WindowEvents
from engine.evaluation.result import SLOEvaluation
from engine.spec.models import SLO

log = logging.getLogger(__name__)

# Longest exception text carried into an SLO's error (it reaches the API and logs).
_MAX_ERROR = 200


def evaluate_each(slos: Sequence[SLO], events: WindowEvents) -> list[SLOEvaluation]:
    """`evaluate_window_events`, one SLO at a time; a failing SLO becomes an `error`."""
    results: list[SLOEvaluation] = []
    for slo in slos:
        try:
            results.extend(evaluate_window_events([slo], events))
        except Exception as exc:
            log.exception("evaluation of %s failed", slo.id)
            text = f"{type(exc).__name__}: {exc}"[:_MAX_ERROR]
            results.append(
                SLOEvaluation(
                    slo=slo,
                    evaluated_at=float(events.at),
                    status="error",
                    error=f"evaluation failed: {text}",
                )
            )
    return results
