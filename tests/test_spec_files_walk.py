"""`spec_files` finds the same files, in the same order, as a `Path.rglob` walk: hidden
files and directories skipped, symlinked directories not entered, symlinked files kept,
ordering by path components (`a/` before `a-b/`)."""

from __future__ import annotations

import os
from pathlib import Path

from engine.spec.reading import SPEC_SUFFIXES, spec_files


def _rglob_oracle(root: Path) -> list[Path]:
    return sorted(
        p
        for p in root.rglob("*")
        if p.suffix in SPEC_SUFFIXES
        and p.is_file()
        and not any(part.startswith(".") for part in p.relative_to(root).parts)
    )


def test_the_walk_matches_rglob(tmp_path: Path) -> None:
    root = tmp_path / "specs"
    names = [
        "a.yaml",
        "b.yml",
        "c.txt",
        "d.YAML",
        "yaml",
        "a/x.yaml",
        "a-b/x.yaml",
        "a/b/c/deep.yml",
        "a/.hidden.yaml",
        ".git/config.yaml",
        "a/.cache/x.yaml",
        "z/e.yaml.bak",
        "z/f.json",
    ]
    for name in names:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("service: x\n")
    (root / "dir.yaml").mkdir()  # a directory named like a spec
    (root / "dir.yaml" / "inner.yaml").write_text("service: y\n")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "linked.yaml").write_text("service: z\n")
    os.symlink(outside, root / "linked_dir")  # not entered, as rglob does not
    os.symlink(outside / "linked.yaml", root / "link.yaml")  # a file: kept
    os.symlink(tmp_path / "missing.yaml", root / "broken.yaml")  # no file: left out
    os.mkfifo(root / "pipe.yaml")  # not a regular file: left out

    found, errors = spec_files([root])
    assert errors == []
    assert found == _rglob_oracle(root)
    relative = [p.relative_to(root).as_posix() for p in found]
    assert relative == [
        "a/b/c/deep.yml",
        "a/x.yaml",
        "a-b/x.yaml",
        "a.yaml",
        "b.yml",
        "dir.yaml/inner.yaml",
        "link.yaml",
    ]


def test_an_empty_directory_is_an_error(tmp_path: Path) -> None:
    (tmp_path / ".hidden.yaml").write_text("service: x\n")
    found, errors = spec_files([tmp_path])
    assert found == []
    assert [e.message for e in errors] == ["no *.yml or *.yaml files in this directory"]
