"""What `slo-engine evaluate --format json` prints: one SLO per line (the table is in
engine.commands.evaluate_table)."""

from __future__ import annotations

import json
from collections.abc import Sequence

from engine.evaluation.result import SLOEvaluation


def evaluations_text(evaluations: Sequence[SLOEvaluation], at: float) -> str:
    """`{"evaluated_at": at, "slos": [...]}` as JSON text with one SLO per line: diffable and greppable, and
    written by json's C encoder (`indent` falls back to the pure-Python one, a twentieth of
    a second for 1,000 SLOs)."""
    rows = ",\n".join(json.dumps(e.to_json()) for e in evaluations)
    body = f"[\n{rows}\n]" if rows else "[]"
    return f'{{"evaluated_at": {json.dumps(at)}, "slos": {body}}}\n'
