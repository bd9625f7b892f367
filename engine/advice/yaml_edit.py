"""Positional edits of YAML text that keep everything else byte for byte.

Round-tripping YAML through a parser loses comments, quoting and layout. These edits start
from the positions the spec loader keeps for every key and value
(`engine.spec.yaml_lines.MarkedMap`) and change only the characters of one scalar, or the
lines of one block-style key, or insert new lines where a mapping's block ends:

    edits = TextEdits(text)
    edits.replace_scalar(mark, "99.5")              # the scalar at a value mark
    edits.set_key(mapping, ("alerting", "low_traffic", "confidence"), "0.999")
    new_text = edits.apply()

Block extents come from indentation: a key's block is its line and every following line
indented deeper (or a `- ` item at the key's own indent), trailing blank and comment lines
excluded — they belong to what follows. Flow-style collections (`{a: 1}`) are only ever
edited at a scalar; anything else raises `EditError`, and the caller says why it stopped.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from engine.spec.yaml_lines import Mark, MarkedMap


class EditError(ValueError):
    """The text cannot be edited safely at this place (flow style, an odd layout)."""


@dataclass(frozen=True)
class _Edit:
    start: int  # offset into the text
    end: int
    text: str


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" "))


def _is_filler(line: str) -> bool:
    stripped = line.strip()
    return not stripped or stripped.startswith("#")


def scalar_end(line: str, col: int) -> int:
    """End (exclusive, 0-based) of the scalar starting at `col` of `line`."""
    if col >= len(line):
        raise EditError("no value at this position")
    quote = line[col]
    if quote in "\"'":
        i = col + 1
        while i < len(line):
            if quote == '"' and line[i] == "\\":
                i += 2
                continue
            if line[i] == quote:
                if quote == "'" and line[i + 1 : i + 2] == "'":
                    i += 2
                    continue
                return i + 1
            i += 1
        raise EditError("a quoted value spanning lines")
    end = col
    while end < len(line) and line[end] not in "\n\r":
        if line[end] in ",}]" or line.startswith(" #", end) or line.startswith("\t#", end):
            break
        end += 1
    return len(line[col:end].rstrip()) + col


class TextEdits:
    """Edits against the original text; applied together, bottom up, by `apply`."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.lines = text.splitlines(keepends=True)
        self._starts = [0]
        for line in self.lines:
            self._starts.append(self._starts[-1] + len(line))
        self._edits: list[_Edit] = []

    # -- positions ------------------------------------------------------------------------

    def offset(self, mark: Mark) -> int:
        return self._starts[mark.line - 1] + mark.column - 1

    def scalar_text(self, mark: Mark) -> str:
        line = self.lines[mark.line - 1]
        return line[mark.column - 1 : scalar_end(line, mark.column - 1)]

    def is_flow(self, mapping: MarkedMap) -> bool:
        line = self.lines[mapping.mark.line - 1]
        return line[mapping.mark.column - 1 : mapping.mark.column] in ("{", "[")

    def block_end(self, line_index: int, indent: int) -> int:
        """Index of the first line after the block that starts at `line_index` (a key at
        `indent` spaces), trailing blank and comment lines left out."""
        end = line_index + 1
        last = line_index + 1
        while end < len(self.lines):
            line = self.lines[end]
            if _is_filler(line):
                end += 1
                continue
            deeper = _indent(line) > indent
            item = _indent(line) == indent and line.lstrip(" ").startswith("- ")
            if not (deeper or item):
                break
            end += 1
            last = end
        return last

    def mapping_end(self, mapping: MarkedMap) -> int:
        """Index of the line after the block mapping's last key block."""
        if self.is_flow(mapping):
            raise EditError("a flow-style mapping ({…}) cannot take new keys here")
        indent = mapping.mark.column - 1
        last_key = max(m.line for m in mapping.key_marks.values())
        return self.block_end(last_key - 1, indent)

    # -- edits ------------------------------------------------------------------------------

    def replace_scalar(self, mark: Mark, text: str) -> None:
        start = self.offset(mark)
        self._edits.append(_Edit(start, start + len(self.scalar_text(mark)), text))

    def _replace_lines(self, first: int, stop: int, lines: Sequence[str]) -> None:
        self._edits.append(
            _Edit(self._starts[first], self._starts[stop], "".join(f"{x}\n" for x in lines))
        )

    def insert_lines(self, before: int, lines: Sequence[str]) -> None:
        at = self._starts[before]
        if before and not self.lines[before - 1].endswith("\n"):
            lines = ["", *lines]  # the text did not end with a newline
        self._edits.append(_Edit(at, at, "".join(f"{x}\n" for x in lines)))

    def delete_key(self, mapping: MarkedMap, key: str) -> None:
        if self.is_flow(mapping):
            raise EditError("a flow-style mapping ({…}) cannot lose a key here")
        line = mapping.key_marks[key].line - 1
        self._replace_lines(line, self.block_end(line, mapping.mark.column - 1), [])

    def set_key(
        self, mapping: MarkedMap, path: Sequence[str], value: Any, comment: str = ""
    ) -> None:
        """Give `path` (keys under `mapping`) the value `value` (a scalar's text, a list of
        strings for a block sequence of flow items, or a dict of those); mappings on the
        way are created when missing. `comment` goes above newly written keys."""
        key, rest = path[0], path[1:]
        if self.is_flow(mapping):
            raise EditError("a flow-style mapping ({…}) cannot be edited here")
        indent = mapping.mark.column - 1
        if key not in mapping:
            body = value
            for k in reversed(rest):
                body = {k: body}
            lines = ([f"# {comment}"] if comment else []) + _render(key, body)
            self.insert_lines(self.mapping_end(mapping), [" " * indent + x for x in lines])
            return
        current = mapping[key]
        if rest:
            if not isinstance(current, MarkedMap):
                raise EditError(f"'{key}' is not a block mapping")
            self.set_key(current, rest, value, comment)
            return
        if not isinstance(value, list | dict) and not isinstance(current, dict | list):
            self.replace_scalar(mapping.value_marks[key], value)
            return
        line = mapping.key_marks[key].line - 1
        lines = [" " * indent + x for x in _render(key, value)]
        self._replace_lines(line, self.block_end(line, indent), lines)

    def apply(self) -> str:
        out = self.text
        for edit in sorted(self._edits, key=lambda e: (e.start, e.end), reverse=True):
            out = out[: edit.start] + edit.text + out[edit.end :]
        return out


def _render(key: str, value: Any) -> list[str]:
    """`key: value` as block YAML lines at indent 0 (nested by two spaces)."""
    if isinstance(value, dict):
        lines = [f"{key}:"]
        for k, v in value.items():
            lines += ["  " + x for x in _render(k, v)]
        return lines
    if isinstance(value, list):
        return [f"{key}:", *(f"  - {item}" for item in value)]
    return [f"{key}: {value}"]
