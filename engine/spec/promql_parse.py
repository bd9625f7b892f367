"""A small PromQL reader for the grouping rewrites (engine.spec.promql_groups).

Tokens first — strings, durations, a range or subquery `[...]` as one token, comments and
whitespace dropped — then a recursive descent without operator precedence: the rewrites
only need to know what is a vector selector (and where its braces are), what is an
aggregation (its grouping clause, how deep it sits, whether it feeds a scalar) and where
the `on (...)`/`ignoring (...)` of binary operators are. Positions are offsets into the
original text, so edits can be spliced in without re-rendering the query.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from engine.spec.models import WINDOW_PLACEHOLDER

AGGREGATORS = frozenset(
    {
        "sum",
        "avg",
        "count",
        "min",
        "max",
        "group",
        "stddev",
        "stdvar",
        "topk",
        "bottomk",
        "quantile",
        "count_values",
        "limitk",
        "limit_ratio",
    }
)
# Aggregations whose first argument is a parameter (k, φ, a label name), not the vector.
_PARAMETRISED = frozenset({"topk", "bottomk", "quantile", "count_values", "limitk", "limit_ratio"})
# Functions turning a vector into a scalar: aggregations inside them must stay whole.
_SCALAR_FUNCTIONS = frozenset({"scalar"})
_SET_OPERATORS = frozenset({"and", "or", "unless", "atan2"})
_BINARY_SYMBOLS = frozenset({"+", "-", "*", "/", "%", "^", "==", "!=", "<=", ">=", "<", ">"})

_TOKEN = re.compile(
    r"""
    (?P<ws>\s+)
    | (?P<comment>\#[^\n]*)
    | (?P<placeholder>PLACEHOLDER)
    | (?P<string>"(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*'|`[^`]*`)
    | (?P<number>0[xX][0-9a-fA-F]+(?![\w:]))
    | (?P<duration>(?:\d+(?:ms|[smhdwy]))+(?![\w:]))
    | (?P<number2>(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?(?![\w:]))
    | (?P<ident>[a-zA-Z_:][a-zA-Z0-9_:]*)
    | (?P<op>==|!=|<=|>=|=~|!~|[-+*/%^=<>])
    | (?P<punct>[(){},@\[])
    """.replace("PLACEHOLDER", re.escape(WINDOW_PLACEHOLDER)),
    re.VERBOSE,
)


class PromQLSyntaxError(ValueError):
    """A query this module cannot read (promtool reports the real syntax errors)."""


@dataclass(frozen=True)
class Token:
    kind: str  # ident, number, duration, string, range, op, punct
    text: str
    start: int
    end: int


def tokenize(query: str) -> list[Token]:
    """The query's tokens, whitespace and comments dropped. A range or subquery `[...]` is
    one token: its durations and colon are not expressions."""
    tokens: list[Token] = []
    pos = 0
    while pos < len(query):
        match = _TOKEN.match(query, pos)
        if match is None:
            raise PromQLSyntaxError(f"unexpected {query[pos]!r} at character {pos + 1}")
        kind = match.lastgroup or ""
        if kind == "punct" and match.group() == "[":
            close = query.find("]", pos)
            if close < 0:
                raise PromQLSyntaxError(f"'[' at character {pos + 1} is never closed")
            tokens.append(Token("range", query[pos : close + 1], pos, close + 1))
            pos = close + 1
            continue
        if kind not in ("ws", "comment"):
            kind = {"number2": "number", "placeholder": "duration"}.get(kind, kind)
            if kind == "ident" and match.group().lower() in ("inf", "nan"):
                kind = "number"
            tokens.append(Token(kind, match.group(), match.start(), match.end()))
        pos = match.end()
    return tokens


@dataclass(frozen=True)
class LabelList:
    """`(a, b)` after by/without/on/ignoring: the labels and where the parentheses are."""

    labels: tuple[str, ...]
    start: int  # offset of "("
    end: int  # offset just after ")"


@dataclass(frozen=True)
class Clause:
    keyword: Token  # by, without, on, ignoring
    labels: LabelList

    @property
    def kind(self) -> str:
        return self.keyword.text.lower()


@dataclass(frozen=True)
class Aggregation:
    name: Token
    clause: Clause | None
    args_start: int  # offset of the "(" opening the arguments
    args_end: int  # offset just after the ")" closing them
    nested: bool  # inside another aggregation's argument
    scalar: bool  # inside a parameter or scalar(): not on the way to the result
    clause_first: bool = False  # `sum by (x) (...)` rather than `sum(...) by (x)`


@dataclass(frozen=True)
class Selector:
    name: Token | None
    braces: tuple[int, int] | None  # offsets of "{" and "}"
    matchers: tuple[tuple[str, str, str], ...]  # label, operator, value as written
    # Just after the last matcher (or its trailing comma): where a new matcher goes, so a
    # comment inside the braces never swallows it.
    inner_end: int = 0
    trailing_comma: bool = False


@dataclass(frozen=True)
class Matching:
    clause: Clause  # on(...) / ignoring(...) of a binary operator
    scalar: bool


@dataclass
class Parsed:
    aggregations: list[Aggregation] = field(default_factory=list)
    selectors: list[Selector] = field(default_factory=list)
    matchings: list[Matching] = field(default_factory=list)


class _Parser:
    """Recursive descent over PromQL, without operator precedence: it only has to know
    what is a selector, an aggregation (and how deep) and a vector-matching clause."""

    def __init__(self, query: str) -> None:
        self.query = query
        self.tokens = tokenize(query)
        self.i = 0
        self.out = Parsed()

    def parse(self) -> Parsed:
        if not self.tokens:
            raise PromQLSyntaxError("the query is empty")
        self._expr(nested=False, scalar=False)
        if self.i != len(self.tokens):
            tok = self.tokens[self.i]
            raise PromQLSyntaxError(f"unexpected {tok.text!r} at character {tok.start + 1}")
        return self.out

    # --- token helpers -------------------------------------------------------------
    def _peek(self, ahead: int = 0) -> Token | None:
        j = self.i + ahead
        return self.tokens[j] if j < len(self.tokens) else None

    def _is(self, text: str, ahead: int = 0) -> bool:
        tok = self._peek(ahead)
        return tok is not None and tok.kind in ("punct", "op") and tok.text == text

    def _is_word(self, *words: str) -> bool:
        tok = self._peek()
        return tok is not None and tok.kind == "ident" and tok.text.lower() in words

    def _take(self, text: str | None = None) -> Token:
        tok = self._peek()
        if tok is None:
            raise PromQLSyntaxError(f"the query ends early (expected {text or 'more'})")
        if text is not None and tok.text != text:
            raise PromQLSyntaxError(
                f"expected {text!r} at character {tok.start + 1}, found {tok.text!r}"
            )
        self.i += 1
        return tok

    # --- grammar ---------------------------------------------------------------------
    def _expr(self, nested: bool, scalar: bool) -> None:
        self._unary(nested, scalar)
        while self._binary_operator(scalar):
            self._unary(nested, scalar)

    def _binary_operator(self, scalar: bool) -> bool:
        tok = self._peek()
        if tok is None:
            return False
        is_symbol = tok.kind == "op" and tok.text in _BINARY_SYMBOLS
        if not is_symbol and not (tok.kind == "ident" and tok.text.lower() in _SET_OPERATORS):
            return False
        self.i += 1
        if self._is_word("bool"):
            self.i += 1
        if self._is_word("on", "ignoring"):
            keyword = self._take()
            clause = Clause(keyword, self._label_list())
            self.out.matchings.append(Matching(clause, scalar))
        if self._is_word("group_left", "group_right"):
            self.i += 1
            if self._is("("):
                self._label_list()
        return True

    def _unary(self, nested: bool, scalar: bool) -> None:
        while self._is("-") or self._is("+"):
            self.i += 1
        self._primary(nested, scalar)
        self._modifiers()

    def _modifiers(self) -> None:
        while True:
            tok = self._peek()
            if tok is None:
                return
            if tok.kind == "range":
                self.i += 1
            elif self._is_word("offset"):
                self.i += 1
                if self._is("-"):
                    self.i += 1
                self._take_kind("duration")
            elif self._is("@"):
                self.i += 1
                if self._is("-") or self._is("+"):
                    self.i += 1
                if self._is_word("start", "end"):
                    self.i += 1
                    self._take("(")
                    self._take(")")
                else:
                    self._take_kind("number")
            else:
                return

    def _take_kind(self, kind: str) -> Token:
        tok = self._take()
        if tok.kind != kind:
            raise PromQLSyntaxError(f"expected a {kind} at character {tok.start + 1}")
        return tok

    def _primary(self, nested: bool, scalar: bool) -> None:
        tok = self._take()
        if tok.kind in ("number", "string"):
            return
        if tok.kind == "punct" and tok.text == "(":
            self._expr(nested, scalar)
            self._take(")")
            return
        if tok.kind == "punct" and tok.text == "{":
            self.i -= 1
            self.out.selectors.append(self._selector(None))
            return
        if tok.kind != "ident":
            raise PromQLSyntaxError(f"unexpected {tok.text!r} at character {tok.start + 1}")
        name = tok.text.lower()
        if name in AGGREGATORS and (self._is("(") or self._is_word("by", "without")):
            self._aggregation(tok, nested, scalar)
        elif self._is("("):
            self._call(tok, nested, scalar)
        else:
            self.out.selectors.append(self._selector(tok))

    def _call(self, name: Token, nested: bool, scalar: bool) -> None:
        self._take("(")
        inner_scalar = scalar or name.text in _SCALAR_FUNCTIONS
        while not self._is(")"):
            self._expr(nested, inner_scalar)
            if not self._is(")"):
                self._take(",")
        self._take(")")

    def _aggregation(self, name: Token, nested: bool, scalar: bool) -> None:
        clause = self._grouping() if self._is_word("by", "without") else None
        clause_first = clause is not None
        args_start = self._take("(").start
        arguments = 0
        while not self._is(")"):
            parameter = name.text.lower() in _PARAMETRISED and arguments == 0
            self._expr(True, scalar or parameter)
            arguments += 1
            if not self._is(")"):
                self._take(",")
        args_end = self._take(")").end
        if clause is None and self._is_word("by", "without"):
            clause = self._grouping()
        self.out.aggregations.append(
            Aggregation(name, clause, args_start, args_end, nested, scalar, clause_first)
        )

    def _grouping(self) -> Clause:
        keyword = self._take()
        return Clause(keyword, self._label_list())

    def _label_list(self) -> LabelList:
        start = self._take("(").start
        labels: list[str] = []
        while not self._is(")"):
            tok = self._take()
            if tok.kind not in ("ident", "string"):
                raise PromQLSyntaxError(f"expected a label name at character {tok.start + 1}")
            labels.append(tok.text if tok.kind == "ident" else tok.text[1:-1])
            if not self._is(")"):
                self._take(",")
        end = self._take(")").end
        return LabelList(tuple(labels), start, end)

    def _selector(self, name: Token | None) -> Selector:
        if not self._is("{"):
            return Selector(name, None, ())
        open_ = self._take("{").start
        matchers: list[tuple[str, str, str]] = []
        inner_end, trailing_comma = open_ + 1, False
        while not self._is("}"):
            label = self._take()
            if label.kind == "string":  # a quoted metric name (Prometheus 3)
                matchers.append(("__name__", "=", label.text[1:-1]))
            elif label.kind != "ident":
                raise PromQLSyntaxError(f"expected a label matcher at character {label.start + 1}")
            else:
                op = self._take()
                value = self._take()
                if op.text not in ("=", "!=", "=~", "!~") or value.kind != "string":
                    raise PromQLSyntaxError(
                        f"expected a label matcher at character {label.start + 1}"
                    )
                matchers.append((label.text, op.text, value.text[1:-1]))
            inner_end, trailing_comma = self.tokens[self.i - 1].end, False
            if not self._is("}"):
                inner_end, trailing_comma = self._take(",").end, True
        close = self._take("}").start
        return Selector(name, (open_, close), tuple(matchers), inner_end, trailing_comma)


def parse(query: str) -> Parsed:
    """Selectors, aggregations and vector matchings of a query; PromQLSyntaxError when the
    query is not PromQL this module can read."""
    return _Parser(query).parse()
