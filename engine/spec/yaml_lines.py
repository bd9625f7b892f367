"""YAML that remembers where every key and value came from.

PyYAML throws positions away once it builds dicts and lists. The spec loader needs them to
turn "slos → 0 → sli → events → bad" back into `api.yaml:14:14`, so this loader builds
`MarkedMap`/`MarkedList` containers that carry the 1-based line and column of each key and
value, and records duplicate keys (which plain YAML silently resolves to the last one).

Parsing uses libyaml's C parser (`yaml.CSafeLoader`) when PyYAML was built with it: the
same composer events and marks (line and column, counted in characters) at about ten times
the speed of the pure-Python parser, which is most of the cost of loading 1,000 spec files.
A file that libyaml rejects is parsed again by the pure-Python loader, so a syntax error
reads exactly the same (message, position, hint) with or without libyaml.

A plain file (no anchors, aliases, custom tags, merge keys or complex keys: every spec we
have seen) is built straight from libyaml's events (`_parse_plain`), skipping the node tree
the composer builds and the constructor then walks: a third less time per spec file. Any
other file, and any file with an error, goes the composer way, so what it reports is
unchanged.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import yaml
from yaml.events import (
    MappingEndEvent,
    MappingStartEvent,
    ScalarEvent,
    SequenceEndEvent,
    SequenceStartEvent,
    StreamEndEvent,
)
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from engine.spec.yaml_safety import (
    MAX_DEPTH,
    AliasBudget,
    DepthGuard,
    YamlLimitError,
    check_node,
    check_text,
    shown,
)

PathStep = str | int
Path = tuple[PathStep, ...]


class Mark(NamedTuple):
    """A 1-based position in a file. A named tuple, not a frozen dataclass: a spec file
    records dozens, and 1,000 files' marks took 30 ms to build as dataclasses."""

    line: int
    column: int

    @classmethod
    def of(cls, mark: yaml.Mark) -> Mark:
        return _at(mark)


def _at(mark: yaml.Mark, _new: Any = tuple.__new__) -> Mark:
    """`Mark.of`, built without the named tuple's argument handling."""
    return _new(Mark, (mark.line + 1, mark.column + 1))  # type: ignore[no-any-return]


class MarkedMap(dict[Any, Any]):
    """A dict plus where it, each key and each value start."""

    mark: Mark
    key_marks: dict[Any, Mark]
    value_marks: dict[Any, Mark]


class MarkedList(list[Any]):
    mark: Mark
    item_marks: list[Mark]


@dataclass(frozen=True)
class DuplicateKey:
    key: Any
    first: Mark
    second: Mark


class MarkedLoader(AliasBudget, DepthGuard, yaml.SafeLoader):
    """SafeLoader whose mappings and sequences remember their marks (and whose limits in
    engine/spec/yaml_safety.py point at the place in the file that broke them)."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        # Not `state`: the PyYAML parser already owns that attribute name.
        self.duplicate_keys: list[DuplicateKey] = []


_CSafeLoader: Any = getattr(yaml, "CSafeLoader", None)


class CMarkedLoader(_CSafeLoader or yaml.SafeLoader):  # type: ignore[misc]
    """The same over libyaml's parser (only used when `LIBYAML` is true)."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.duplicate_keys: list[DuplicateKey] = []


# Whether `parse_yaml` uses libyaml (tests switch it off to check both give the same).
LIBYAML = _CSafeLoader is not None


_STR = "tag:yaml.org,2002:str"


def _construct(loader: MarkedLoader, node: Node) -> Any:
    """`construct_object`, minus its bookkeeping for scalars (most nodes of a spec): that
    bookkeeping is for anchors and recursive collections, and a scalar is neither."""
    if isinstance(node, ScalarNode):
        if node.tag == _STR:
            return node.value  # what construct_yaml_str returns, without three calls
        constructor = loader.yaml_constructors.get(node.tag)
        if constructor is not None:
            try:
                return constructor(loader, node)
            except (ValueError, OverflowError):  # a 5,000-digit int, a 2024-13-01 date
                raise YamlLimitError(
                    f"cannot read {shown(node.value)} as {node.tag.rsplit(':', 1)[-1]}",
                    node.start_mark,
                    "quote it to make it a string, or write a value in range",
                ) from None
    return loader.construct_object(node, deep=True)


def _construct_map(loader: MarkedLoader, node: MappingNode) -> MarkedMap:
    loader.flatten_mapping(node)  # resolve `<<: *anchor` merges first
    result = MarkedMap()
    result.mark = Mark.of(node.start_mark)
    result.key_marks, result.value_marks = {}, {}
    for key_node, value_node in node.value:
        key = _construct(loader, key_node)
        if not isinstance(key, Hashable):
            raise yaml.constructor.ConstructorError(
                "while constructing a mapping",
                node.start_mark,
                "found a key that is a mapping or a list",
                key_node.start_mark,
            )
        if key in result:
            loader.duplicate_keys.append(
                DuplicateKey(key, result.key_marks[key], Mark.of(key_node.start_mark))
            )
        result[key] = _construct(loader, value_node)
        result.key_marks[key] = Mark.of(key_node.start_mark)
        result.value_marks[key] = Mark.of(value_node.start_mark)
    return result


def _construct_seq(loader: MarkedLoader, node: SequenceNode) -> MarkedList:
    result = MarkedList(_construct(loader, child) for child in node.value)
    result.mark = Mark.of(node.start_mark)
    result.item_marks = [Mark.of(child.start_mark) for child in node.value]
    return result


for _loader in (MarkedLoader, CMarkedLoader):
    _loader.add_constructor("tag:yaml.org,2002:map", _construct_map)  # type: ignore[arg-type]
    _loader.add_constructor("tag:yaml.org,2002:seq", _construct_seq)  # type: ignore[arg-type]


@dataclass(frozen=True)
class YamlDocument:
    """One `---` document of a file: its data (None for an empty document) and where it starts."""

    data: Any
    start: Mark


@dataclass(frozen=True)
class YamlSyntaxError:
    mark: Mark
    message: str
    hint: str


@dataclass
class ParsedFile:
    documents: list[YamlDocument]
    duplicates: list[DuplicateKey]
    syntax_error: YamlSyntaxError | None = None


def _syntax_hint(problem: str) -> str:
    if "\\t" in problem or "tab" in problem:
        return "indent with spaces, YAML does not allow tabs"
    if "mapping values are not allowed" in problem:
        return "a value containing ': ' must be quoted, or a key is indented wrongly"
    if "expected <block end>" in problem or "did not find expected key" in problem:
        return "check the indentation: keys of one mapping must line up"
    if "found undefined alias" in problem:
        return "define the &anchor before using the *alias"
    return "fix the YAML syntax at this position (quote values that contain ': ', '#' or '{')"


def parse_yaml(text: str) -> ParsedFile:
    """All documents of a YAML stream; on a syntax error, the documents before it and the error.
    A file beyond the limits of `engine.spec.yaml_safety` is one such error."""
    too_much = check_text(text)
    if too_much is not None:
        return ParsedFile([], [], _syntax_error(too_much))
    if LIBYAML:
        plain = _parse_plain(CMarkedLoader(text))
        if plain is not None:
            return plain
        try:
            parsed = _parse_with(CMarkedLoader(text), anchors="&" in text)
        except yaml.YAMLError:
            parsed = None  # e.g. a reader error: let the pure-Python parser report it
        if parsed is not None and parsed.syntax_error is None:
            return parsed
        # libyaml words its errors differently: say it as the pure-Python parser does.
    return _parse_with(MarkedLoader(text), anchors="&" in text)


def _nesting(root: Node) -> int:
    """Levels of mappings and lists in a document without anchors (so without aliases or
    cycles), visiting collections only."""
    deepest, stack = 0, [(root, 1)]
    while stack:
        node, level = stack.pop()
        if isinstance(node, MappingNode):
            children = [child for pair in node.value for child in pair]
        elif isinstance(node, SequenceNode):
            children = node.value
        else:
            continue
        deepest = max(deepest, level)
        stack.extend((child, level + 1) for child in children if not isinstance(child, ScalarNode))
    return deepest


def _parse_with(loader: MarkedLoader | CMarkedLoader, anchors: bool = True) -> ParsedFile:
    documents: list[YamlDocument] = []
    try:
        while loader.check_node():
            node: Node | None = loader.get_node()
            if node is None:
                continue
            # Depth and alias expansion, before anything walks the data. Without an anchor
            # there is no alias, and a document within the depth limit passes the full
            # check (a tenth of its cost: it visits every scalar).
            if anchors or _nesting(node) > MAX_DEPTH:
                check_node(node)
            documents.append(
                YamlDocument(loader.construct_document(node), Mark.of(node.start_mark))
            )
        # PyYAML yields nothing at all for `---` followed by nothing; that is an empty document.
    except yaml.MarkedYAMLError as exc:
        return ParsedFile(documents, loader.duplicate_keys, _syntax_error(exc))
    finally:
        loader.dispose()
    return ParsedFile(documents, loader.duplicate_keys)


class _NotPlain(Exception):
    """The file uses something `_parse_plain` leaves to the composer path."""


# libyaml's implicit resolvers, by a plain scalar's first character: a plain scalar whose
# first character has none (most of a spec: names, PromQL) is a string without asking them.
_IMPLICIT = CMarkedLoader.yaml_implicit_resolvers
_PLAIN_ONLY = None not in _IMPLICIT and not CMarkedLoader.yaml_path_resolvers
# A plain scalar's tag depends on its text alone (no path resolvers): `name`, `total`,
# `1h`, `99.9` recur in every spec file, so their tags are remembered.
_PLAIN_TAGS: dict[str, str] = {}


def _parse_plain(loader: CMarkedLoader) -> ParsedFile | None:
    """What `_parse_with` returns, built straight from libyaml's events: a third faster for
    a spec file, because no node tree is composed and walked again. Only for files without
    anchors, aliases, explicit tags, merge keys, complex keys or nesting past `MAX_DEPTH`,
    and without syntax errors: None for anything else, which the composer path then reads
    (and reports) as before."""
    if not _PLAIN_ONLY:
        return None
    documents: list[YamlDocument] = []
    try:
        loader.get_event()  # the stream's start
        while not isinstance(loader.get_event(), StreamEndEvent):  # a document's start
            root = loader.get_event()
            data = _plain_node(loader, root, 1)
            documents.append(YamlDocument(data, Mark.of(root.start_mark)))
            loader.get_event()  # the document's end
    except (_NotPlain, yaml.YAMLError, ValueError, OverflowError):
        return None
    finally:
        loader.dispose()
    return ParsedFile(documents, loader.duplicate_keys)


def _plain_scalar(loader: CMarkedLoader, event: Any) -> Any:
    """A scalar as `_construct` makes it (the composer's tag resolution, inlined)."""
    if event.anchor is not None:
        raise _NotPlain
    tag, value = event.tag, event.value
    if tag is None or tag == "!":
        if not (event.implicit[0] and value[:1] in _IMPLICIT):
            return value  # quoted, or no resolver for its first character: a string
        tag = _PLAIN_TAGS.get(value)
        if tag is None:
            tag = loader.resolve(ScalarNode, value, event.implicit)
            if len(_PLAIN_TAGS) < 4096 and len(value) <= 64:
                _PLAIN_TAGS[value] = tag
    if tag == _STR:
        return value
    constructor = loader.yaml_constructors.get(tag)
    if constructor is None:  # an explicit tag, `<<`, `=`: the composer path's business
        raise _NotPlain
    node = ScalarNode(tag, value, event.start_mark, event.end_mark, event.style)
    return constructor(loader, node)


def _plain_node(loader: CMarkedLoader, event: Any, depth: int) -> Any:
    """The value that starts with `event`, read to its end; `depth` is its nesting level."""
    if type(event) is ScalarEvent:
        return _plain_scalar(loader, event)
    if event.anchor is not None or event.tag not in (None, "!") or depth > MAX_DEPTH:
        raise _NotPlain
    if type(event) is MappingStartEvent:
        return _plain_map(loader, event, depth)
    if type(event) is not SequenceStartEvent:
        raise _NotPlain  # an alias
    result = MarkedList()
    marks = []
    while type(item := loader.get_event()) is not SequenceEndEvent:
        marks.append(_at(item.start_mark))
        result.append(_plain_node(loader, item, depth + 1))
    result.mark = _at(event.start_mark)
    result.item_marks = marks
    return result


def _plain_map(loader: CMarkedLoader, event: Any, depth: int) -> MarkedMap:
    result = MarkedMap()
    result.mark = _at(event.start_mark)
    result.key_marks, result.value_marks = key_marks, value_marks = {}, {}
    while type(key_event := loader.get_event()) is not MappingEndEvent:
        if type(key_event) is not ScalarEvent:
            raise _NotPlain  # a mapping or list as a key
        key = _plain_scalar(loader, key_event)
        key_mark = _at(key_event.start_mark)
        if key in result:  # recorded before the value is read, as `_construct_map` does
            loader.duplicate_keys.append(DuplicateKey(key, key_marks[key], key_mark))
        value_event = loader.get_event()
        result[key] = _plain_node(loader, value_event, depth + 1)
        key_marks[key] = key_mark
        value_marks[key] = _at(value_event.start_mark)
    return result


def _syntax_error(exc: yaml.MarkedYAMLError) -> YamlSyntaxError:
    mark = exc.problem_mark or exc.context_mark
    problem = (exc.problem or exc.context or "invalid YAML").strip()
    if exc.context and exc.problem:
        problem = f"{problem} ({exc.context.strip()})"
    hint = exc.hint if isinstance(exc, YamlLimitError) else _syntax_hint(problem)
    return YamlSyntaxError(Mark.of(mark) if mark else Mark(1, 1), f"invalid YAML: {problem}", hint)


def locate(root: Any, path: Sequence[PathStep], *, at_key: bool = False, default: Mark) -> Mark:
    """Where `path` points inside `root`, or as close as the data goes.

    A missing step (a required key that was never written) points at the key that opened
    its parent mapping — `events:` for a missing `events.total` — because that is the line
    the SRE has to edit.
    """
    current, mark, key_mark = root, default, default
    if isinstance(root, MarkedMap | MarkedList):
        mark = key_mark = root.mark
    for i, step in enumerate(path):
        last = i == len(path) - 1
        if isinstance(current, MarkedMap) and isinstance(step, Hashable) and step in current:
            key_mark = current.key_marks[step]
            mark = key_mark if (last and at_key) else current.value_marks[step]
            current = current[step]
        elif isinstance(current, MarkedList) and isinstance(step, int) and 0 <= step < len(current):
            mark = key_mark = current.item_marks[step]
            current = current[step]
        else:
            return key_mark
    return mark
