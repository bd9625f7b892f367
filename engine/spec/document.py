"""A YAML document with its file, and the bridge from model locations back to source lines.

Importers turn Sloth or OpenSLO documents into native model input. When pydantic then
rejects, say, `slos[0].sli.events.bad`, `Origins` knows that came from
`slos[0].sli.events.error_query` of a Sloth file (or from a separate OpenSLO SLI document)
so the error still lands on the line the SRE wrote.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from engine.spec.errors import Severity, SpecError
from engine.spec.yaml_lines import Mark, Path, PathStep, locate


@dataclass(frozen=True)
class Document:
    """One spec document: `data` sits at `prefix` inside the parsed YAML `root` of `file`.

    `prefix` is non-empty only for files whose top level is a list of objects (OpenSLO allows
    that); positions are always looked up from the root so marks stay exact.
    """

    file: str
    data: Any
    root: Any
    start: Mark
    prefix: Path = ()

    def mark(self, path: Sequence[PathStep] = (), *, at_key: bool = False) -> Mark:
        return locate(self.root, (*self.prefix, *path), at_key=at_key, default=self.start)

    def error(
        self,
        path: Sequence[PathStep],
        message: str,
        hint: str = "",
        *,
        at_key: bool = False,
        severity: Severity = "error",
    ) -> SpecError:
        mark = self.mark(path, at_key=at_key)
        return SpecError(self.file, mark.line, mark.column, message, hint, severity)

    def get(self, path: Sequence[PathStep]) -> Any:
        current = self.data
        for step in path:
            if isinstance(current, list):
                present = isinstance(step, int) and 0 <= step < len(current)
            else:
                present = isinstance(current, dict) and step in current
            if not present:
                return None
            current = current[step]
        return current


@dataclass
class Origins:
    """Model location prefix → (document, source path). The longest matching prefix wins and
    the rest of the model location is appended (label keys are the same on both sides)."""

    table: dict[Path, tuple[Document, Path]] = field(default_factory=dict)

    def add(self, model_loc: Path, doc: Document, source_path: Path) -> None:
        self.table[model_loc] = (doc, source_path)

    def resolve(self, loc: Sequence[PathStep]) -> tuple[Document, Path]:
        loc = tuple(loc)
        for n in range(len(loc), -1, -1):
            hit = self.table.get(loc[:n])
            if hit is not None:
                doc, source = hit
                return doc, (*source, *loc[n:])
        raise KeyError(f"no origin for {loc!r}")  # every unit maps () — a programming error

    @classmethod
    def identity(cls, doc: Document) -> Origins:
        return cls({(): (doc, ())})


@dataclass
class NativeUnit:
    """Input for one `ServiceSpec`, whatever format it was written in."""

    doc: Document
    data: dict[str, Any]
    origins: Origins
    # Warnings the conversion wants shown only if the unit turns out valid (e.g. raw SLIs).
    notes: list[SpecError] = field(default_factory=list)


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    choices = sorted(set(choices))
    close = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    if close:
        return f"did you mean '{close[0]}'?"
    return "allowed keys: " + ", ".join(choices)


# --- shape checks for foreign formats -------------------------------------------------
# A shape is: a dict of key -> shape (a mapping with known keys), [shape] (a list of that),
# SCALAR, STR_MAP (a free mapping of strings) or ANY. Scalar *types* are left to the native
# model, whose errors map back through Origins.
SCALAR = "scalar"
STR_MAP = "str-map"
ANY = "any"


def _kind(value: Any) -> str:
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if value is None:
        return "nothing"
    return f"the {type(value).__name__} {value!r}"


def check_shape(doc: Document, shape: Any, path: Path = ()) -> list[SpecError]:
    value = doc.get(path)
    if shape == ANY or value is None:
        return []
    name = path[-1] if path else "document"
    if isinstance(shape, dict):
        if not isinstance(value, dict):
            return [
                doc.error(path, f"'{name}' must be a mapping, found {_kind(value)}", _fix(shape))
            ]
        errors = []
        for key in value:
            if key not in shape:
                errors.append(
                    doc.error(
                        (*path, key),
                        f"unknown key '{key}'" + (f" in '{name}'" if path else ""),
                        did_you_mean(str(key), shape),
                        at_key=True,
                    )
                )
            else:
                errors.extend(check_shape(doc, shape[key], (*path, key)))
        return errors
    if isinstance(shape, list):
        if not isinstance(value, list):
            return [
                doc.error(
                    path,
                    f"'{name}' must be a list, found {_kind(value)}",
                    "start each item with '- '",
                )
            ]
        return [e for i in range(len(value)) for e in check_shape(doc, shape[0], (*path, i))]
    if shape == STR_MAP:
        if not isinstance(value, dict):
            return [
                doc.error(
                    path, f"'{name}' must be a mapping, found {_kind(value)}", "write key: value"
                )
            ]
        return [
            doc.error(
                (*path, k),
                f"'{name}.{k}' must be a string, found {_kind(v)}",
                "quote the value",
            )
            for k, v in value.items()
            if isinstance(v, dict | list)
        ]
    if shape == SCALAR and isinstance(value, dict | list):
        return [doc.error(path, f"'{name}' must be a single value, found {_kind(value)}")]
    return []


def _fix(shape: dict[str, Any]) -> str:
    return "expected keys: " + ", ".join(shape)
