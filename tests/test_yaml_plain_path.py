"""The event-built YAML path (`_parse_plain`) reads plain files exactly as the composer path
does — data, every mark, duplicate keys, document starts — and leaves everything else to it."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest

from engine.spec import yaml_lines
from engine.spec.yaml_lines import (
    CMarkedLoader,
    MarkedList,
    MarkedLoader,
    MarkedMap,
    ParsedFile,
    _parse_plain,
    _parse_with,
)

pytestmark = pytest.mark.skipif(not yaml_lines.LIBYAML, reason="PyYAML without libyaml")

ROOT = Path(__file__).resolve().parents[1]

PLAIN = {
    "spec": """\
apiVersion: slo-engine/v1
service: checkout   # a comment
slos:
  - name: latency
    objective: 99.5
    group_by: [route]
    sli:
      latency:
        histogram: request_seconds
        selector: 'job="checkout"'
        threshold: 0.3
    annotations: {runbook: "https://runbooks/checkout"}
    alerting:
      burn_rates:
        - {severity: page, long_window: 1h, short_window: 5m, factor: 14.4}
""",
    "scalars": """\
int: 3
negative: -7
float: 1.5e3
bool: yes
true_: true
null_: ~
empty:
date: 2024-01-02
stamp: 2024-01-02T03:04:05Z
quoted_int: "3"
single: 'on'
literal: |
  two
  lines
folded: >
  one
  line
dot: .inf
octal: 0o17
hex: 0x1f
""",
    "duplicates": "a: 1\nb:\n  c: 1\n  c: 2\na: 3\n",
    "nested_lists": "- - - x\n  - y\n- []\n- {}\n- [1, [2, {k: v}]]\n",
    "documents": "---\na: 1\n---\n- b\n--- 3\n---\n",
    "empty_document": "---\n",
    "empty_stream": "",
    "comments_only": "# nothing here\n",
    "root_scalar": "just text\n",
    "int_keys": "1: one\n2.5: two\nnull: three\ntrue: four\n",
    "unicode": "name: café ☕\nsli: 'Ünïcödé'\n",
    "explicit_core_tags": "a: !!str 3\nb: !!int '4'\nc: !!float 1\n",
}

# Files the event path leaves to the composer path (which must then answer as before).
NOT_PLAIN = {
    "anchor": "a: &x 1\nb: *x\n",
    "merge": "base: &b {x: 1}\nuse:\n  <<: *b\n  y: 2\n",
    "bare_merge_key": "<<: {x: 1}\n",
    "local_tag": "a: !custom 3\n",
    "complex_key": "? [a, b]\n: value\n",
    "value_key": "=: 1\n",
    "syntax": "a: [1, 2\nb: 3\n",
    "tab": "a:\n\tb: 1\n",
    "bad_date": "a: 2024-13-01\n",
    "deep": "a: " + "[" * (yaml_lines.MAX_DEPTH + 1) + "]" * (yaml_lines.MAX_DEPTH + 1) + "\n",
    "late_error": "---\na: 1\n---\nb: [\n",
}


def _same(a: Any, b: Any) -> bool:
    if type(a) is not type(b):
        return False
    if isinstance(a, MarkedMap):
        return (
            list(a) == list(b)
            and (a.mark, a.key_marks, a.value_marks) == (b.mark, b.key_marks, b.value_marks)
            and all(_same(a[k], b[k]) for k in a)
        )
    if isinstance(a, MarkedList):
        return (
            (a.mark, a.item_marks) == (b.mark, b.item_marks)
            and len(a) == len(b)
            and all(_same(x, y) for x, y in zip(a, b, strict=True))
        )
    return bool(a == b)


def _assert_same(fast: ParsedFile, slow: ParsedFile) -> None:
    assert slow.syntax_error is None
    assert fast.syntax_error is None
    assert [d.start for d in fast.documents] == [d.start for d in slow.documents]
    for mine, theirs in zip(fast.documents, slow.documents, strict=True):
        assert _same(mine.data, theirs.data), (mine.data, theirs.data)
    assert fast.duplicates == slow.duplicates


@pytest.mark.parametrize("name", sorted(PLAIN))
def test_plain_files_read_as_the_composer_reads_them(name: str) -> None:
    text = PLAIN[name]
    fast = _parse_plain(CMarkedLoader(text))
    assert fast is not None
    _assert_same(fast, _parse_with(CMarkedLoader(text)))
    _assert_same(fast, _parse_with(MarkedLoader(text)))


def test_duplicate_keys_in_order_with_their_marks() -> None:
    fast = _parse_plain(CMarkedLoader(PLAIN["duplicates"]))
    assert fast is not None
    assert [(d.key, d.first.line, d.second.line) for d in fast.duplicates] == [
        ("c", 3, 4),
        ("a", 1, 5),
    ]
    assert fast.documents[0].data["a"] == 3


@pytest.mark.parametrize("name", sorted(NOT_PLAIN))
def test_other_files_go_to_the_composer_path(name: str) -> None:
    text = NOT_PLAIN[name]
    assert _parse_plain(CMarkedLoader(text)) is None
    # parse_yaml still answers, as the composer path does (data or a located error).
    parsed = yaml_lines.parse_yaml(text)
    expected = _parse_with(MarkedLoader(text))
    assert (parsed.syntax_error is None) == (expected.syntax_error is None)
    if expected.syntax_error is not None:
        assert parsed.syntax_error == expected.syntax_error


def _repository_yaml() -> list[Path]:
    skip = {".venv", ".git", "node_modules"}
    return sorted(
        p
        for pattern in ("*.yaml", "*.yml")
        for p in ROOT.rglob(pattern)
        if not skip & set(p.relative_to(ROOT).parts)
    )


def test_every_yaml_file_of_the_repository() -> None:
    files = _repository_yaml()
    assert len(files) >= 20
    plain = 0
    for path in files:
        text = path.read_text(encoding="utf-8", errors="replace")
        slow = _parse_with(CMarkedLoader(text))
        fast = _parse_plain(CMarkedLoader(text))
        if fast is None:
            continue
        plain += 1
        _assert_same(fast, slow)
    assert plain >= len(files) // 2


def test_random_documents_built_from_spec_fragments() -> None:
    """Random nestings of maps, lists and scalar kinds, block and flow style."""
    rng = random.Random(1804)
    scalars = ["x", "'q'", '"d"', "3", "1.5", "yes", "~", "2024-01-02", "", "a b", "-1"]

    def value(depth: int, indent: int) -> str:
        roll = rng.random()
        if depth > 4 or roll < 0.4:
            return " " + rng.choice(scalars)
        if roll < 0.55:
            items = ", ".join(rng.choice(scalars) or "z" for _ in range(rng.randint(0, 3)))
            return f" [{items}]" if rng.random() < 0.5 else " {" + items.replace(",", ": 1,") + "}"
        pad = " " * (indent + 2)
        if roll < 0.8:
            keys = rng.sample(["a", "b", "c", "d", "1", "true"], rng.randint(1, 4))
            return "".join(f"\n{pad}{k}:{value(depth + 1, indent + 2)}" for k in keys)
        return "".join(f"\n{pad}-{value(depth + 1, indent + 2)}" for _ in range(rng.randint(1, 3)))

    checked = 0
    for _ in range(400):
        keys = rng.sample(["name", "slos", "sli", "a", "b", "c"], rng.randint(1, 5))
        text = "".join(f"{k}:{value(0, 0)}\n" for k in keys)
        slow = _parse_with(CMarkedLoader(text))
        if slow.syntax_error is not None:
            assert _parse_plain(CMarkedLoader(text)) is None
            continue
        fast = _parse_plain(CMarkedLoader(text))
        assert fast is not None, text
        _assert_same(fast, slow)
        checked += 1
    assert checked >= 200
