"""Group labels of grouped SLOs (`group_by`): which labels may make groups, how many groups
one SLO may have, and how a group is written (Prometheus' label-set text).

An SLO instance's id is `<service>/<name>{label="value",...}`, labels sorted, values
escaped as Prometheus writes them, so the id reads like the series it stands for.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Annotated

from pydantic import AfterValidator

from engine.spec.labels import RESERVED_ALERT_LABELS

DEFAULT_MAX_GROUPS = 200
MAX_GROUPS_LIMIT = 10_000
_LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")


def check_group_label(name: str) -> str:
    if not _LABEL_NAME.match(name):
        raise ValueError(f"{name!r} is not a valid Prometheus label name")
    if name.startswith("__"):
        raise ValueError(
            f"cannot group by {name!r} — labels starting with __ are Prometheus' own and "
            "are gone after relabelling; group by a label the series keep"
        )
    if name in RESERVED_ALERT_LABELS:
        raise ValueError(
            f"cannot group by {name!r}, an alert label slo-engine sets itself — group by "
            "the label that tells the groups apart, e.g. route or region"
        )
    return name


GroupLabel = Annotated[str, AfterValidator(check_group_label)]


def unique_group_labels(value: list[str] | None) -> list[str] | None:
    if value is not None:
        twice = sorted({name for name in value if value.count(name) > 1})
        if twice:
            raise ValueError(
                f"group_by lists {', '.join(map(repr, twice))} more than once — "
                "list each label once"
            )
    return value


def check_max_groups(value: int | None) -> int | None:
    if value is not None and not (1 <= value <= MAX_GROUPS_LIMIT):
        raise ValueError(
            f"max_groups {value} is out of range — it caps the instances of one grouped "
            f"SLO: 1 ≤ max_groups ≤ {MAX_GROUPS_LIMIT} (default {DEFAULT_MAX_GROUPS})"
        )
    return value


def escape_label_value(value: str) -> str:
    """A label value inside PromQL's (and the exposition format's) double quotes."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def label_set_text(pairs: Iterable[tuple[str, str]]) -> str:
    """`{a="1",b="x"}`: a label set as Prometheus writes it, labels sorted, values escaped."""
    return "{" + ",".join(f'{n}="{escape_label_value(v)}"' for n, v in sorted(pairs)) + "}"
