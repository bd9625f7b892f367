"""Known incidents ("labels") for scoring a backtest: what really happened, per service.

A labels file is YAML or JSON, either a list of intervals::

    incidents:
      - {service: api, start: "2024-01-03T10:00:00Z", end: "2024-01-03T11:30:00Z", name: "db failover"}

or a mapping from service to its intervals::

    api:
      - {start: 1704276000, end: 1704281400}

Times are Unix seconds or RFC 3339 strings (a time without a zone is rejected: ambiguous).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml


class LabelsError(ValueError):
    """A labels file that cannot be read; the message names the file and the entry."""


@dataclass(frozen=True)
class LabeledIncident:
    service: str
    start: float
    end: float
    name: str = ""


def _time(value: Any, where: str) -> float:
    if isinstance(value, bool):
        raise LabelsError(f"{where}: expected a time, got a boolean")
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise LabelsError(f"{where}: {value} has no time zone — add Z or +00:00")
        return value.timestamp()
    if isinstance(value, str):
        text = value.strip()
        try:
            return float(text)
        except ValueError:
            pass
        try:
            parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            raise LabelsError(
                f"{where}: {value!r} is not a time — use Unix seconds or RFC 3339 "
                "like 2024-01-03T10:00:00Z"
            ) from None
        return _time(parsed, where)
    raise LabelsError(f"{where}: expected a time, got {type(value).__name__}")


def _entry(obj: Any, service: str | None, where: str) -> LabeledIncident:
    if not isinstance(obj, dict):
        raise LabelsError(f"{where}: expected a mapping with start and end")
    unknown = set(obj) - {"service", "start", "end", "name"}
    if unknown:
        raise LabelsError(f"{where}: unknown keys {', '.join(sorted(unknown))}")
    name = obj.get("service", service)
    if not isinstance(name, str) or not name:
        raise LabelsError(f"{where}: needs a service")
    for key in ("start", "end"):
        if key not in obj:
            raise LabelsError(f"{where}: missing {key}")
    start, end = _time(obj["start"], f"{where}.start"), _time(obj["end"], f"{where}.end")
    if end <= start:
        raise LabelsError(f"{where}: end must be after start")
    return LabeledIncident(name, start, end, str(obj.get("name", "")))


def parse_labels(data: Any, source: str = "labels") -> list[LabeledIncident]:
    if isinstance(data, dict) and set(data) == {"incidents"}:
        data = data["incidents"]
    out: list[LabeledIncident] = []
    if isinstance(data, list):
        for i, obj in enumerate(data):
            out.append(_entry(obj, None, f"{source}: incidents[{i}]"))
    elif isinstance(data, dict):
        for service, items in data.items():
            if not isinstance(items, list):
                raise LabelsError(f"{source}: {service}: expected a list of intervals")
            for i, obj in enumerate(items):
                out.append(_entry(obj, str(service), f"{source}: {service}[{i}]"))
    else:
        raise LabelsError(
            f"{source}: expected a list of incidents or a mapping service → intervals"
        )
    return sorted(out, key=lambda x: (x.start, x.service))


def load_labels(path: str | Path) -> list[LabeledIncident]:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise LabelsError(f"{path}: cannot read: {exc.strerror}") from None
    try:
        data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        raise LabelsError(
            f"{path}: not valid {'JSON' if path.suffix == '.json' else 'YAML'}: {exc}"
        ) from None
    return parse_labels(data, str(path))
