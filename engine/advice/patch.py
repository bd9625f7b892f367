"""The recommendations as edits of the spec files: objectives and alerting overrides.

Each spec document is read again with the loader's own steps (`engine.spec.reading`), so
every key and value has its line and column; an SLO's objective is then replaced where it
was written — in a native spec, or through the importer's `Origins` in a Sloth, Pyrra or
OpenSLO file (as a fraction where the file writes one) — and a recommended alerting
override is written under the SLO's `alerting:` (`engine.advice.yaml_edit`). Comments,
quoting and layout elsewhere are untouched.

Only native specs are written: a foreign file is the source of truth of another tool and
has no place for slo-engine's alerting overrides, so its objective change is shown as a
diff with the reason. An edited native file is loaded again (`load_specs`) before it is
written: if it does not validate, or does not read back the recommended objective, it is
left alone and the reason reported.
"""

from __future__ import annotations

import difflib
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path

import yaml

from engine.advice.policies import ALTERNATIVES
from engine.advice.report import Advice, SLOAdvice
from engine.advice.yaml_edit import EditError, TextEdits
from engine.evaluation.policy import exact
from engine.spec.document import NativeUnit
from engine.spec.importers import openslo
from engine.spec.load_result import LoadResult
from engine.spec.loader import load_specs
from engine.spec.models import BurnRateRuleSpec
from engine.spec.reading import NATIVE_API_VERSION, dispatch_document, read_documents
from engine.spec.yaml_lines import MarkedMap


@dataclass
class FilePatch:
    path: Path
    old: str
    new: str
    native: bool
    notes: list[str] = field(default_factory=list)  # what was not done, and why
    valid: bool = True

    @property
    def changed(self) -> bool:
        return self.old != self.new

    def diff(self) -> str:
        """A unified diff: `a/`, `b/` paths relative to the working directory (`git apply`,
        `patch -p1`), or the absolute path on both sides for files outside it (`patch -p0`)."""
        try:
            name = self.path.resolve().relative_to(Path.cwd().resolve())
            old, new = f"a/{name}", f"b/{name}"
        except ValueError:
            old = new = str(self.path.resolve())
        return "".join(
            difflib.unified_diff(
                self.old.splitlines(keepends=True),
                self.new.splitlines(keepends=True),
                fromfile=old,
                tofile=new,
            )
        )


def _units(files: Sequence[Path]) -> list[NativeUnit]:
    """Every spec document of `files` as the loader's units, with their origins."""
    result = LoadResult()
    units: list[NativeUnit] = []
    catalog = openslo.Catalog()
    for path in files:
        for doc in read_documents(path, result):
            dispatch_document(doc, units, catalog, result)
    units += openslo.convert_all(catalog)[0]
    return units


def _find(units: Sequence[NativeUnit], advice: SLOAdvice) -> tuple[NativeUnit, int] | None:
    slo = advice.slo
    for unit in units:
        if unit.doc.file != slo.source or unit.data.get("service") != slo.service:
            continue
        for k, item in enumerate(unit.data.get("slos") or []):
            if isinstance(item, dict) and item.get("name") == slo.name:
                return unit, k
    return None


def _number_text(value: Decimal, like: str) -> str:
    text = f"{value.normalize():f}"
    return f"{like[0]}{text}{like[0]}" if like[:1] in ("'", '"') else text


def _objective_text(old_text: str, current: Decimal, new: Decimal) -> str | None:
    """The new objective written like the old one: a percentage, or a fraction where the
    file writes one (OpenSLO's `target`); None when the old value is neither."""
    try:
        old = Decimal(str(yaml.safe_load(old_text)).strip().rstrip("%"))
    except (InvalidOperation, yaml.YAMLError):
        return None
    if old == current:
        return _number_text(new, old_text)
    if old == current / 100:
        return _number_text(new / 100, old_text)
    return None


def _rule_item(rule: BurnRateRuleSpec) -> str:
    amount = (
        f"factor: {exact(rule.factor)}"
        if rule.factor is not None
        else f"budget_share: {exact(rule.budget_share)}"  # type: ignore[arg-type]
    )
    return (
        f"{{severity: {rule.severity}, long_window: {rule.long_window}, "
        f"short_window: {rule.short_window}, {amount}}}"
    )


def _alerting_edit(edits: TextEdits, item: MarkedMap, advice: SLOAdvice) -> None:
    """Write the recommended policy as the SLO's alerting override."""
    choice = advice.policy
    assert choice is not None
    name = choice.best.policy
    best, current = choice.best, choice.rows[0]
    comment = (
        f"slo-engine suggest: {name} — {best.score.detected}/{best.score.incidents} known "
        f"incidents caught, {best.false_pages} false pages (current policy: "
        f"{current.score.detected}/{current.score.incidents}, {current.false_pages})"
    )
    alerting = item.get("alerting")
    if name == "default":
        if not isinstance(alerting, MarkedMap):
            raise EditError("'alerting' is not a block mapping")
        edits.delete_key(alerting, "burn_rates")
        return
    if name == "low-traffic-0.999":
        edits.set_key(item, ("alerting", "low_traffic", "confidence"), "0.999", comment)
        return
    alt = next(a for a in ALTERNATIVES if a.name == name)
    spec = alt.alerting(advice.slo.alerting)
    assert spec is not None and spec.burn_rates is not None
    rules = [_rule_item(r) for r in spec.burn_rates]
    edits.set_key(item, ("alerting", "burn_rates"), rules, comment)


def _edit_slo(
    edits: TextEdits, unit: NativeUnit, k: int, advice: SLOAdvice, native: bool
) -> list[str]:
    """Edits of one SLO; returns notes on what could not be done."""
    notes = []
    slo = advice.slo
    new = advice.objective_change
    if new is not None:
        doc, path = unit.origins.resolve(("slos", k, "objective"))
        mark = doc.mark(path)
        text = _objective_text(edits.scalar_text(mark), slo.objective_percent, new)
        if text is None:
            notes.append(f"{slo.id}: the objective is not written as a number here")
        else:
            edits.replace_scalar(mark, text)
    if advice.policy_change is not None:
        if not native:
            notes.append(
                f"{slo.id}: the recommended policy {advice.policy_change} is a native "
                "alerting override; the file's format has no place for it"
            )
            return notes
        item = unit.doc.root["slos"][k] if isinstance(unit.doc.root, MarkedMap) else None
        try:
            if not isinstance(item, MarkedMap):
                raise EditError("the SLO is not a mapping")
            _alerting_edit(edits, item, advice)
        except EditError as exc:
            notes.append(f"{slo.id}: the alerting override was not written: {exc}")
    return notes


def plan_patches(advice: Advice) -> list[FilePatch]:
    """One patch per spec file with a recommended change (objective or policy)."""
    # A group's advice is shown, not written: its spec is the grouped SLO's, for all groups.
    todo = [
        a
        for a in advice.slos
        if not a.slo.group and (a.objective_change is not None or a.policy_change)
    ]
    files = sorted({Path(a.slo.source) for a in todo})
    units = _units(files)
    patches = []
    for path in files:
        old = path.read_text(encoding="utf-8")
        edits = TextEdits(old)
        native = True
        notes: list[str] = []
        for item in (a for a in todo if Path(a.slo.source) == path):
            found = _find(units, item)
            if found is None:
                notes.append(f"{item.slo.id}: not found in {path}")
                continue
            unit, k = found
            is_native = unit.doc.data.get("apiVersion") == NATIVE_API_VERSION
            native = native and is_native
            try:
                notes += _edit_slo(edits, unit, k, item, is_native)
            except EditError as exc:
                notes.append(f"{item.slo.id}: {exc}")
        patches.append(FilePatch(path, old, edits.apply(), native, notes))
    return patches


def check_patches(patches: Sequence[FilePatch], advice: Advice) -> None:
    """Load the edited native files as `validate` would; a file that fails, or does not
    read back its recommended objectives, is marked invalid (and must not be written)."""
    todo = [p for p in patches if p.native and p.changed]
    if not todo:
        return
    expected = {a.slo.id: a.objective_change for a in advice.slos if a.objective_change}
    with tempfile.TemporaryDirectory(prefix="slo-suggest-") as tmp:
        for i, patch in enumerate(todo):
            copy = Path(tmp) / f"{i}" / patch.path.name
            copy.parent.mkdir()
            copy.write_text(patch.new, encoding="utf-8")
            loaded = load_specs([copy])
            errors = [str(e).replace(str(copy), str(patch.path)) for e in loaded.errors]
            for slo in loaded.slos:
                want = expected.get(slo.id)
                if want is not None and slo.objective_percent != want:
                    errors.append(f"{slo.id}: reads back objective {slo.objective_percent}")
            if errors:
                patch.valid = False
                patch.notes += [f"not written, the edit does not validate: {e}" for e in errors]


def write_patches(patches: Sequence[FilePatch]) -> list[Path]:
    """Write the native, valid, changed files; returns what was written."""
    written = []
    for patch in patches:
        if patch.native and patch.valid and patch.changed:
            patch.path.write_text(patch.new, encoding="utf-8")
            written.append(patch.path)
    return written
