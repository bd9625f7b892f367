"""Silences (maintenance windows): label matchers with a start and an expiry, as Alertmanager
has them. A silenced alert opens no incident and sends nothing; an incident whose every
firing alert is silenced stays open but stays quiet (no repeats, no escalation)."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

MatchOp = Literal["=", "!=", "=~", "!~"]
_MATCHER_RE = re.compile(r'^\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*"?(.*?)"?\s*$')


class MatcherError(ValueError):
    """A matcher that cannot be parsed or whose regex does not compile."""


@dataclass(frozen=True)
class Matcher:
    name: str
    op: MatchOp
    value: str
    _regex: re.Pattern[str] | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.op in ("=~", "!~"):
            try:
                # Alertmanager anchors regex matchers at both ends.
                compiled = re.compile(f"^(?:{self.value})$")
            except re.error as exc:
                raise MatcherError(
                    f"matcher {self.name}{self.op}{self.value!r}: bad regex: {exc}"
                ) from None
            object.__setattr__(self, "_regex", compiled)
        elif self.op not in ("=", "!="):
            raise MatcherError(f"unknown matcher operator {self.op!r}: use = != =~ !~")

    @classmethod
    def parse(cls, text: str) -> Matcher:
        """`service="api"`, `severity!=ticket`, `slo=~"api/.*"` (quotes optional)."""
        match = _MATCHER_RE.match(text)
        if match is None:
            raise MatcherError(
                f"{text!r} is not a matcher — write name=value, name!=value, name=~regex or "
                'name!~regex, e.g. service="api"'
            )
        name, op, value = match.groups()
        return cls(name, op, value)  # type: ignore[arg-type]

    def matches(self, labels: Mapping[str, str]) -> bool:
        # A missing label matches as the empty string, as in Alertmanager.
        value = labels.get(self.name, "")
        if self.op == "=":
            return value == self.value
        if self.op == "!=":
            return value != self.value
        assert self._regex is not None
        hit = self._regex.match(value) is not None
        return hit if self.op == "=~" else not hit

    def __str__(self) -> str:
        return f'{self.name}{self.op}"{self.value}"'

    def to_json(self) -> dict[str, str]:
        return {"name": self.name, "op": self.op, "value": self.value}

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> Matcher:
        return cls(obj["name"], obj["op"], obj["value"])


@dataclass(frozen=True)
class Silence:
    id: str
    matchers: tuple[Matcher, ...]
    starts_at: float
    ends_at: float
    created_by: str
    comment: str
    created_at: float

    def __post_init__(self) -> None:
        if not self.matchers:
            raise MatcherError("a silence needs at least one matcher (it would mute everything)")
        if self.ends_at <= self.starts_at:
            raise MatcherError("a silence must end after it starts")

    def active(self, now: float) -> bool:
        return self.starts_at <= now < self.ends_at

    def expired(self, now: float) -> bool:
        return now >= self.ends_at

    def matches(self, labels: Mapping[str, str], now: float) -> bool:
        return self.active(now) and all(m.matches(labels) for m in self.matchers)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "matchers": [m.to_json() for m in self.matchers],
            "starts_at": self.starts_at,
            "ends_at": self.ends_at,
            "created_by": self.created_by,
            "comment": self.comment,
            "created_at": self.created_at,
        }

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> Silence:
        return cls(
            id=obj["id"],
            matchers=tuple(Matcher.from_json(m) for m in obj["matchers"]),
            starts_at=float(obj["starts_at"]),
            ends_at=float(obj["ends_at"]),
            created_by=obj["created_by"],
            comment=obj.get("comment", ""),
            created_at=float(obj["created_at"]),
        )


def parse_matchers(items: Sequence[str | Matcher]) -> tuple[Matcher, ...]:
    return tuple(m if isinstance(m, Matcher) else Matcher.parse(m) for m in items)
