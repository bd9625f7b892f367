"""Limits on what a YAML file may make the loader do, each refused with a located error.

Spec files and the daemon config are written by people, but also generated, templated and
pasted; a careless or hostile file must cost a bounded amount of time and memory and come
back as `file:line:col: message — fix`, never as a traceback or an out-of-memory kill:

- **size**: at most `MAX_FILE_BYTES` (1 MiB) per file. The largest real spec file is a few
  kB; a megabyte holds thousands of SLOs.
- **characters**: the control characters YAML forbids (NUL, ESC, ...) are reported at their
  line and column. PyYAML raises them from the loader's constructor, outside its error
  handling, as an unlocated `ReaderError`.
- **nesting**: at most `MAX_DEPTH` (64) levels of mappings and lists. The deepest spec
  needs about ten; the composer and every consumer of the data recurse once per level, so
  a few thousand `[` would otherwise end in `RecursionError`.
- **aliases**: allowed, because `<<: *defaults` merges are common in hand-written YAML,
  but what they expand to is bounded: aliases may add at most `MAX_ALIAS_NODES` (100,000)
  nodes to a document, and an alias to the collection it is inside is refused. An anchor
  is shared, not copied, while parsing — the cost appears later, when validation walks the
  data or a message renders it, so a 1.6 kB "billion laughs" file once grew to 4 GB.
  The error points at the alias that crosses the limit (and names its anchor's line): the
  composed graph has forgotten where its aliases were written, so `AliasBudget` counts
  them while composing.

Messages never render user input without a bound either: `shown()` is the one way to put
a value into an error text.
"""

from __future__ import annotations

import re
import reprlib
from typing import Any

import yaml
from yaml.events import AliasEvent, CollectionStartEvent
from yaml.nodes import MappingNode, Node, SequenceNode

MAX_FILE_BYTES = 1024 * 1024
MAX_DEPTH = 64
MAX_ALIAS_NODES = 100_000
# Longest text of a value inside an error message.
MAX_SHOWN = 80

# What the YAML 1.1 reader refuses (PyYAML's `Reader.NON_PRINTABLE`).
_NON_PRINTABLE = re.compile(
    "[^\x09\x0a\x0d\x20-\x7e\x85\xa0-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]"
)

_FLATTEN = "no spec or config needs this much nesting; check for unclosed [ or {"

_repr = reprlib.Repr()
_repr.maxstring = MAX_SHOWN
_repr.maxother = MAX_SHOWN
_repr.maxlong = 40
_repr.maxlevel = 2
_repr.maxlist = _repr.maxdict = _repr.maxtuple = _repr.maxset = 4


def shown(value: Any) -> str:
    """`repr(value)` cut to a bounded length, however large or deep the value is."""
    text = _repr.repr(value)
    return text if len(text) <= MAX_SHOWN + 10 else text[:MAX_SHOWN] + "..."


class YamlLimitError(yaml.MarkedYAMLError):
    """A file beyond one of the limits above; `parse_yaml` reports it as a syntax error."""

    def __init__(self, problem: str, mark: yaml.Mark | None, hint: str) -> None:
        super().__init__(problem=problem, problem_mark=mark)
        self.hint = hint


def _mark_at(text: str, index: int) -> yaml.Mark:
    line = text.count("\n", 0, index)
    column = index - (text.rfind("\n", 0, index) + 1)
    return yaml.Mark("<unicode string>", index, line, column, None, None)


def check_text(text: str) -> YamlLimitError | None:
    """The limits that need no parsing: file size and forbidden characters."""
    size = len(text.encode("utf-8", "surrogatepass"))
    if size > MAX_FILE_BYTES:
        return YamlLimitError(
            f"file is {size:,} bytes, over the limit of {MAX_FILE_BYTES:,} (1 MiB) per file",
            _mark_at(text, 0),
            "split it into several files",
        )
    bad = _NON_PRINTABLE.search(text)
    if bad is not None:
        return YamlLimitError(
            f"control character U+{ord(bad.group()):04X} is not allowed in YAML",
            _mark_at(text, bad.start()),
            "remove it, or write it as an escape (\\t, \\x1b) inside a double-quoted string",
        )
    return None


def _children(node: Node) -> list[Node]:
    if isinstance(node, MappingNode):
        return [child for pair in node.value for child in pair]
    if isinstance(node, SequenceNode):
        return list(node.value)
    return []


def _recursive(node: Node) -> YamlLimitError:
    return YamlLimitError(
        "an alias refers to the collection it is inside (a recursive structure)",
        node.start_mark,
        "an alias may only name a value defined before and outside it",
    )


def check_node(root: Node) -> None:
    """Raise `YamlLimitError` when a composed document nests deeper than `MAX_DEPTH` or its
    aliases expand beyond `MAX_ALIAS_NODES` (or into themselves).

    Iterative and memoised per node, so it costs one visit of each node as written, never
    of the expansion it is measuring."""
    written = 0
    size: dict[int, int] = {}  # id(node) → nodes once expanded (itself included)
    depth: dict[int, int] = {}  # id(node) → levels of collections at and below it
    open_nodes: set[int] = set()
    stack: list[tuple[Node, bool]] = [(root, False)]
    while stack:
        node, done = stack.pop()
        key = id(node)
        if done:
            kids = _children(node)
            size[key] = 1 + sum(size[id(k)] for k in kids)
            nested = isinstance(node, MappingNode | SequenceNode)
            depth[key] = int(nested) + max((depth[id(k)] for k in kids), default=0)
            open_nodes.discard(key)
            if depth[key] > MAX_DEPTH:
                raise YamlLimitError(
                    f"nesting deeper than {MAX_DEPTH} levels of mappings and lists",
                    node.start_mark,
                    _FLATTEN,
                )
            continue
        if key in size:
            continue  # an alias of a node already measured
        if key in open_nodes:
            raise _recursive(node)
        written += 1
        open_nodes.add(key)
        stack.append((node, True))
        stack.extend((child, False) for child in reversed(_children(node)))
        if len(open_nodes) > MAX_DEPTH + 1:
            raise YamlLimitError(
                f"nesting deeper than {MAX_DEPTH} levels of mappings and lists",
                node.start_mark,
                _FLATTEN,
            )
    expanded = size[id(root)]
    # Only libyaml's composer gets here with a bomb (the pure-Python one stops at the alias,
    # see `AliasBudget`); `parse_yaml` then re-parses in pure Python to report that place.
    if expanded - written > MAX_ALIAS_NODES:
        raise YamlLimitError(
            f"aliases expand this document to {expanded:,} nodes from {written:,} written "
            f"(at most {MAX_ALIAS_NODES:,} more are allowed)",
            root.start_mark,
            "write the values out, or use fewer levels of aliases of aliases",
        )


class DepthGuard:
    """Mixin for a pure-Python loader: refuse nesting beyond `MAX_DEPTH` while composing,
    before the composer's recursion (three frames per level) reaches Python's limit."""

    _depth = 0

    def compose_node(self, parent: Node | None, index: Any) -> Node | None:
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH + 1:  # + 1: a scalar at the deepest level is fine
                event = self.peek_event()  # type: ignore[attr-defined]
                raise YamlLimitError(
                    f"nesting deeper than {MAX_DEPTH} levels of mappings and lists",
                    event.start_mark,
                    _FLATTEN,
                )
            return super().compose_node(parent, index)  # type: ignore[misc,no-any-return]
        finally:
            self._depth -= 1


def expanded_size(root: Node, memo: dict[int, int]) -> int:
    """Nodes `root` stands for once every alias inside it is expanded (itself included).

    Iterative and memoised per node (`memo`: id → size), so an alias of an alias costs a
    lookup. For completely composed nodes; one that contains itself is refused."""
    visiting: set[int] = set()
    stack: list[tuple[Node, bool]] = [(root, False)]
    while stack:
        node, done = stack.pop()
        if id(node) in memo:
            continue
        kids = _children(node)
        if done:
            memo[id(node)] = 1 + sum(memo[id(k)] for k in kids)
            visiting.discard(id(node))
            continue
        if id(node) in visiting:
            raise _recursive(node)
        visiting.add(id(node))
        stack.append((node, True))
        stack.extend((kid, False) for kid in kids if id(kid) not in memo)
    return memo[id(root)]


class AliasBudget:
    """Mixin for a pure-Python loader: count the nodes each alias adds while composing, and
    refuse the alias that takes a document past `MAX_ALIAS_NODES` at its own line and
    column. `check_node` sees only the composed graph, where an alias is the anchored node
    itself: it can measure a bomb but not say which `*alias` in the file set it off."""

    _alias_added = 0

    def compose_document(self) -> Node | None:
        self._alias_added = 0
        self._alias_sizes: dict[int, int] = {}
        self._open_anchors: set[str] = set()
        return super().compose_document()  # type: ignore[misc,no-any-return]

    def compose_node(self, parent: Node | None, index: Any) -> Node | None:
        event = self.peek_event()  # type: ignore[attr-defined]
        anchors: dict[str, Node] = self.anchors  # type: ignore[attr-defined]
        if isinstance(event, AliasEvent):
            target = anchors.get(event.anchor or "")
            # An alias of a collection still open is recursive: `check_node` refuses it.
            if target is not None and event.anchor not in self._open_anchors:
                self._spend(event, target)
            return super().compose_node(parent, index)  # type: ignore[misc,no-any-return]
        opened = isinstance(event, CollectionStartEvent) and event.anchor is not None
        if opened:
            self._open_anchors.add(event.anchor)
        try:
            return super().compose_node(parent, index)  # type: ignore[misc,no-any-return]
        finally:
            if opened:
                self._open_anchors.discard(event.anchor)

    def _spend(self, alias: AliasEvent, target: Node) -> None:
        adds = expanded_size(target, self._alias_sizes)
        self._alias_added += adds
        if self._alias_added > MAX_ALIAS_NODES:
            raise YamlLimitError(
                f"aliases expand this document by over {MAX_ALIAS_NODES:,} nodes; this "
                f"*{alias.anchor} adds {adds:,} (its anchor &{alias.anchor} is on line "
                f"{target.start_mark.line + 1})",
                alias.start_mark,
                "write the values out, or use fewer levels of aliases of aliases",
            )
