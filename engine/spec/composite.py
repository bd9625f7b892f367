"""Composite SLOs: an SLI built from other SLOs' events (a user journey across services).

    sli:
      composite:
        objectives:
          - {slo: api/availability, weight: 2}
          - {slo: payments/latency}          # weight 1

Event-weighted: over any window, the composite's bad events are Σ wᵢ·badᵢ and its total
events Σ wᵢ·totalᵢ, so its error ratio is Σ wᵢ·badᵢ / Σ wᵢ·totalᵢ (docs/budgets.md). The
composite keeps its own objective, period, burn-rate policy, alerts and incidents; only its
events come from the components.

The model checks one spec on its own (weights, unique references); whether the referenced
SLOs exist, are not grouped and form no cycle needs every loaded spec:
`check_composites` runs after the cross-file checks, with errors on the lines written.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from engine.spec.bounds import at_most
from engine.spec.fields import DecimalField

SLO_REF_RE = re.compile(
    r"^[a-z0-9]([a-z0-9_-]{0,62}[a-z0-9])?/[a-z0-9]([a-z0-9_-]{0,62}[a-z0-9])?$"
)
# A weight is a relative importance, not an event count: a million to one is already more
# contrast than any journey needs, and keeps Σ w·events far from float trouble.
MAX_WEIGHT = Decimal(1_000_000)


class CompositeObjective(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    slo: str
    weight: DecimalField = Decimal(1)

    @field_validator("slo")
    @classmethod
    def _reference(cls, value: str) -> str:
        if not SLO_REF_RE.match(value):
            raise ValueError(
                f"{value!r} is not an SLO id — write <service>/<slo name>, e.g. api/availability"
            )
        return value

    @field_validator("weight")
    @classmethod
    def _positive(cls, value: Decimal) -> Decimal:
        if value <= 0:
            raise ValueError(f"weight {value} must be greater than 0 (the default is 1)")
        at_most("weight", value, MAX_WEIGHT)
        return value


class CompositeSLI(BaseModel):
    """The components of a composite SLO, each with its weight."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    objectives: list[CompositeObjective] = Field(min_length=1)

    @field_validator("objectives")
    @classmethod
    def _unique(cls, value: list[CompositeObjective]) -> list[CompositeObjective]:
        seen: set[str] = set()
        for objective in value:
            if objective.slo in seen:
                raise ValueError(
                    f"SLO {objective.slo!r} is listed twice — list each component once "
                    "and give it the combined weight"
                )
            seen.add(objective.slo)
        return value

    @property
    def refs(self) -> tuple[str, ...]:
        return tuple(o.slo for o in self.objectives)


@dataclass(frozen=True)
class CompositeProblem:
    """One composite SLO (by id) whose objective `index` (None: the whole list) is wrong."""

    slo_id: str
    index: int | None
    message: str
    hint: str


def composite_problems(
    composites: dict[str, CompositeSLI], grouped: Iterable[str], known: Iterable[str]
) -> list[CompositeProblem]:
    """What is wrong with each composite given every loaded SLO id (`known`) and the ids of
    grouped SLOs: unknown or grouped components, and cycles (a composite reaching itself
    through other composites)."""
    known_ids, grouped_ids = set(known), set(grouped)
    problems: list[CompositeProblem] = []
    for slo_id, sli in composites.items():
        for i, ref in enumerate(sli.refs):
            if ref == slo_id:
                continue  # a cycle of one: reported with the cycles below
            if ref not in known_ids:
                problems.append(
                    CompositeProblem(
                        slo_id,
                        i,
                        f"composite {slo_id} names SLO {ref!r}, which no loaded spec defines",
                        "load its spec too, or check <service>/<slo name>",
                    )
                )
            elif ref in grouped_ids:
                problems.append(
                    CompositeProblem(
                        slo_id,
                        i,
                        f"composite {slo_id} names grouped SLO {ref!r} (group_by); "
                        "composites of grouped SLOs are not supported",
                        "name an SLO without group_by",
                    )
                )
    for slo_id in _in_cycles(composites):
        problems.append(
            CompositeProblem(
                slo_id,
                None,
                f"composite {slo_id} is part of a cycle of composites "
                f"({' → '.join(_cycle_path(composites, slo_id))})",
                "a composite may build on other composites, never on itself",
            )
        )
    return problems


def _in_cycles(composites: dict[str, CompositeSLI]) -> list[str]:
    return [s for s in composites if s in _cycle_path(composites, s)[1:]]


def _cycle_path(composites: dict[str, CompositeSLI], start: str) -> list[str]:
    """The first path from `start` back to itself through composites, or [start]."""
    stack: list[list[str]] = [[start]]
    seen: set[str] = set()
    while stack:
        path = stack.pop()
        for ref in composites[path[-1]].refs:
            if ref == start:
                return [*path, ref]
            if ref in composites and ref not in seen:
                seen.add(ref)
                stack.append([*path, ref])
    return [start]


def component_order(composites: dict[str, CompositeSLI]) -> list[str]:
    """Composite ids with every composite after the composites it builds on (no cycles:
    `composite_problems` refused them)."""
    done: list[str] = []

    def visit(slo_id: str, trail: Sequence[str]) -> None:
        if slo_id in done or slo_id in trail:
            return
        for ref in composites[slo_id].refs:
            if ref in composites:
                visit(ref, (*trail, slo_id))
        done.append(slo_id)

    for slo_id in composites:
        visit(slo_id, ())
    return done
