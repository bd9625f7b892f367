"""The body of `POST /api/v1/maintenance`: which SLOs, from when to when, and why.

    {"matchers": {"service": "api"},                       # or ["api", "db"]
     "start": "2026-12-06T01:00:00Z", "end": "2026-12-06T03:00:00+00:00",
     "reason": "database upgrade"}

`matchers.slo` names SLOs by id (`api/availability`, a grouped SLO's every instance); with
both, an SLO must match both. Times are RFC 3339 with an offset (a time without one is a
guess about the reader's zone). What depends on the clock — a start at most an hour ago,
an end still ahead — is checked by the route (engine/api/routers/maintenance.py).
"""

from __future__ import annotations

from typing import Annotated

from pydantic import (
    AwareDatetime,
    Field,
    StringConstraints,
    ValidationInfo,
    field_validator,
    model_validator,
)

from engine.api.schemas import Strict
from engine.spec.maintenance import MAX_WINDOW

SERVICE_PATTERN = r"^[a-z0-9]([a-z0-9_-]{0,62}[a-z0-9])?$"
SLO_ID_PATTERN = r"^[a-z0-9]([a-z0-9_-]{0,62}[a-z0-9])?/[a-z0-9]([a-z0-9_-]{0,62}[a-z0-9])?$"
MAINTENANCE_ID_PATTERN = r"^mw-[0-9a-f]{16}$"
MAX_MATCHED = 50
REASON_MAX = 500

ServiceName = Annotated[str, StringConstraints(pattern=SERVICE_PATTERN)]
SloId = Annotated[str, StringConstraints(pattern=SLO_ID_PATTERN)]
Services = Annotated[list[ServiceName], Field(min_length=1, max_length=MAX_MATCHED)]
SloIds = Annotated[list[SloId], Field(min_length=1, max_length=MAX_MATCHED)]


def _lf(value: object) -> object:
    """CRLF and lone CR → LF, before the control-character check would refuse CR."""
    if isinstance(value, str):
        return value.replace("\r\n", "\n").replace("\r", "\n")
    return value


def _listed(value: object) -> object:
    # One name or a list of names: stored as a list either way.
    return [value] if isinstance(value, str) else value


class MaintenanceMatchers(Strict):
    service: Services | None = Field(
        default=None, description="A service name or a list of them (any SLO of them)."
    )
    slo: SloIds | None = Field(
        default=None, description="An SLO id (`service/name`) or a list of them."
    )

    _one_or_many = field_validator("service", "slo", mode="before")(_listed)

    @model_validator(mode="after")
    def _some(self) -> MaintenanceMatchers:
        if self.service is None and self.slo is None:
            raise ValueError("give `service`, `slo` or both")
        return self


class MaintenanceRequest(Strict):
    matchers: MaintenanceMatchers
    start: AwareDatetime = Field(description="RFC 3339 with an offset; at most 1 h ago.")
    end: AwareDatetime = Field(description=f"RFC 3339 with an offset; after start, ≤ {MAX_WINDOW}.")
    reason: Annotated[
        str,
        StringConstraints(
            strip_whitespace=True,
            min_length=1,
            max_length=REASON_MAX,
            pattern=r"^[^\x00-\x08\x0b-\x1f\x7f]+$",
        ),
        Field(description="Why (shown on the status page); line ends stored as LF."),
    ]

    _line_ends = field_validator("reason", mode="before")(_lf)

    @field_validator("end")
    @classmethod
    def _after_start(cls, value: AwareDatetime, info: ValidationInfo) -> AwareDatetime:
        start = info.data.get("start")
        if start is None:
            return value
        if value <= start:
            raise ValueError("end must be after start")
        if (value - start).total_seconds() > MAX_WINDOW.seconds:
            raise ValueError(f"a maintenance window lasts at most {MAX_WINDOW}")
        return value
