"""Write generated files to disk, or compare them with what is there (`--check`).

The generators are pure; this is the only module that touches the file system. A file is
"ours" if its name matches one of the names the generator produces, so a removed service's
stale rules are reported by `--check` (and deleted on write) while anything else a user keeps
in the same directories is left alone.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from engine.generate.pipeline import GeneratedFile, Root

# Every name the generator can produce, per output root (relative, POSIX).
OWNED_PATTERNS: Mapping[Root, tuple[str, ...]] = {
    "rules": ("*.rules.yml", "*.prometheusrule.yml", "alertmanager.yml"),
    "dashboards": (
        "slo-overview.json",
        "slo-*.json",
        "golden-signals-*.json",
        "provisioning/datasources/prometheus.yml",
        "provisioning/dashboards/slo-engine.yml",
    ),
}


@dataclass(frozen=True)
class Drift:
    """How the files on disk differ from what the specs generate."""

    changed: tuple[Path, ...] = ()
    missing: tuple[Path, ...] = ()
    extra: tuple[Path, ...] = ()

    @property
    def clean(self) -> bool:
        return not (self.changed or self.missing or self.extra)

    def lines(self) -> list[str]:
        return (
            [f"changed: {p}" for p in self.changed]
            + [f"missing: {p}" for p in self.missing]
            + [f"extra:   {p}" for p in self.extra]
        )


def _owned_on_disk(root: Root, directory: Path) -> set[Path]:
    if not directory.is_dir():
        return set()
    found = set()
    for path in directory.rglob("*"):
        rel = path.relative_to(directory).as_posix()
        # Top-level patterns must not match files in sub-directories (provisioning/...).
        if path.is_file() and any(
            fnmatch.fnmatchcase(rel, pattern) and rel.count("/") == pattern.count("/")
            for pattern in OWNED_PATTERNS[root]
        ):
            found.add(path)
    return found


def _targets(files: Sequence[GeneratedFile], roots: Mapping[Root, Path]) -> dict[Path, str]:
    return {roots[f.root] / f.path: f.text for f in files}


def check(files: Sequence[GeneratedFile], roots: Mapping[Root, Path]) -> Drift:
    targets = _targets(files, roots)
    changed, missing = [], []
    for path, text in sorted(targets.items()):
        if not path.is_file():
            missing.append(path)
        elif path.read_text(encoding="utf-8") != text:
            changed.append(path)
    on_disk = set().union(*(_owned_on_disk(r, d) for r, d in roots.items()))
    extra = sorted(on_disk - set(targets))
    return Drift(tuple(changed), tuple(missing), tuple(extra))


def write(files: Sequence[GeneratedFile], roots: Mapping[Root, Path]) -> Drift:
    """Write every file whose content changed, delete stale generated files; return what
    changed (the same report `check` would have given before writing)."""
    targets = _targets(files, roots)
    drift = check(files, roots)
    for path in (*drift.changed, *drift.missing):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(targets[path], encoding="utf-8")
    for path in drift.extra:
        path.unlink()
    return drift
