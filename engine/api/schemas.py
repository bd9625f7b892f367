"""What clients may send: strict request bodies for the mutating endpoints.

Unknown fields are rejected (`extra="forbid"`) so a misspelt `note` is an error rather than
silently ignored, and every string has a length limit so the timeline and the status page
stay readable and the store stays small. Control characters are refused in the short,
single-line fields (names) because they end up in logs and notifications. Free text accepts
Windows (CRLF) and old Mac (CR) line ends and stores them as LF, so what a Windows client
sends is neither refused nor shown with stray carriage returns.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)

from engine.incidents.silences import Matcher, MatcherError
from engine.spec.durations import Duration, DurationError

# Who did something: a person or a bot, shown in the timeline and in notifications.
Actor = Annotated[
    str,
    StringConstraints(
        strip_whitespace=True, min_length=1, max_length=200, pattern=r"^[^\x00-\x1f\x7f]+$"
    ),
]


def _lf(value: object) -> object:
    """CRLF and lone CR line ends → LF (before the control-character check refuses CR)."""
    if isinstance(value, str):
        return value.replace("\r\n", "\n").replace("\r", "\n")
    return value


# Free text (notes, comments): newlines allowed (any line end, stored as LF), other control
# characters not.
Text = Annotated[
    str,
    StringConstraints(
        strip_whitespace=True,
        min_length=1,
        max_length=4000,
        pattern=r"^[^\x00-\x08\x0b-\x1f\x7f]+$",
    ),
    BeforeValidator(_lf),
]
ShortText = Annotated[
    str,
    StringConstraints(
        strip_whitespace=True,
        min_length=1,
        max_length=1000,
        pattern=r"^[^\x00-\x08\x0b-\x1f\x7f]+$",
    ),
    BeforeValidator(_lf),
]
LabelName = Annotated[str, StringConstraints(pattern=r"^[a-zA-Z_][a-zA-Z0-9_]{0,99}$")]

INCIDENT_ID_PATTERN = r"^INC-\d{4}-\d{4,}$"
SILENCE_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$"
IDEMPOTENCY_KEY_RE = re.compile(r"^[\x21-\x7e]{1,255}$")


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    @model_validator(mode="before")
    @classmethod
    def _no_actor_in_the_body(cls, data: object) -> object:
        # Issue 13: the actor is whoever authenticated. A body naming someone else would let
        # any token holder act as anyone, so the old fields are refused with the reason.
        if isinstance(data, dict):
            for name in ACTOR_FIELDS & data.keys():
                raise ValueError(
                    f"`{name}` is not accepted: the actor is the authenticated identity (the "
                    "OIDC subject or the API token's name) — remove it from the body"
                )
        return data


ACTOR_FIELDS = frozenset({"by", "created_by"})


class AckRequest(Strict):
    pass


class ResolveRequest(Strict):
    note: Text | None = None


class CommentRequest(Strict):
    text: Text


class MatcherIn(Strict):
    name: LabelName
    value: Annotated[str, StringConstraints(max_length=1024)]
    op: Literal["=", "!=", "=~", "!~"] = "="

    @model_validator(mode="after")
    def _regex_compiles(self) -> MatcherIn:
        try:
            self.to_matcher()
        except MatcherError as exc:
            raise ValueError(str(exc)) from None
        return self

    def to_matcher(self) -> Matcher:
        return Matcher(self.name, self.op, self.value)


class SilenceRequest(Strict):
    matchers: Annotated[list[MatcherIn], Field(min_length=1, max_length=20)]
    starts_at: AwareDatetime | None = Field(
        default=None, description="RFC 3339 with a zone, or Unix seconds; default now."
    )
    ends_at: AwareDatetime | None = Field(
        default=None, description="RFC 3339 with a zone, or Unix seconds. Give this or duration."
    )
    duration: str | None = Field(
        default=None, description='How long from starts_at, e.g. "2h" or "1h30m".', max_length=32
    )
    comment: ShortText

    @field_validator("duration")
    @classmethod
    def _duration_parses(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            parsed = Duration.parse(value)
        except DurationError as exc:
            raise ValueError(str(exc)) from None
        if parsed.seconds <= 0:
            raise ValueError("duration must be positive")
        return str(parsed)

    @model_validator(mode="after")
    def _one_end(self) -> SilenceRequest:
        if (self.ends_at is None) == (self.duration is None):
            raise ValueError("give exactly one of ends_at or duration")
        # Alertmanager's rule: a silence whose every matcher also matches an absent label
        # would mute alerts that do not even carry the label — almost always a mistake.
        if all(m.to_matcher().matches({}) for m in self.matchers):
            raise ValueError(
                'at least one matcher must not match the empty string, e.g. service="api"'
            )
        return self
