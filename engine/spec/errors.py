"""Problems found in spec files, as values with a place.

Every problem points at a file, a 1-based line and column, says what is wrong and — after
an em dash — what to do about it, so an editor or CI log can jump straight to the fix.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Severity = Literal["error", "warning"]


@dataclass(frozen=True, order=True)
class SpecError:
    """`path:line:col: message — hint`. Ordered by file, then position, for stable output."""

    file: str
    line: int
    column: int
    message: str
    hint: str = ""
    severity: Severity = "error"

    @property
    def text(self) -> str:
        """The message with its hint: what JSON output carries as `message`."""
        return f"{self.message} — {self.hint}" if self.hint else self.message

    def __str__(self) -> str:
        prefix = "warning: " if self.severity == "warning" else ""
        return f"{self.file}:{self.line}:{self.column}: {prefix}{self.text}"

    def to_json(self) -> dict[str, object]:
        return {
            "file": self.file,
            "line": self.line,
            "column": self.column,
            "message": self.text,
        }


def split_hint(text: str) -> tuple[str, str]:
    """Model validators write `problem — fix`; keep the two halves apart."""
    message, sep, hint = text.partition(" — ")
    return (message.strip(), hint.strip()) if sep else (text.strip(), "")
