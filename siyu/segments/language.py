"""The segment expression language: tokenizer, recursive-descent parser and AST.

The grammar (documented with examples in docs/segments.md)::

    expr      := and_expr ("or" and_expr)*
    and_expr  := unary ("and" unary)*
    unary     := "not" unary | "(" expr ")" | predicate
    predicate := "tag" ":" STRING                      tag:"高意向"  tag:"地区/上海"
               | "stage" ":" NAME                      stage:paid
               | "staff" ":" NAME                      staff:alice
               | "added_within" ":" DAYS               added_within:90d
               | "added_before" ":" DATE               added_before:2026-01-01
               | "added_after" ":" DATE                added_after:2026-01-01
               | "attr" "." WORD OP value              attr.city = "上海"   attr.level >= 3
               | "count" "(" "event" ":" STRING "," DAYS ")" OP INT
    NAME      := WORD | STRING
    value     := STRING | NUMBER | DATE
    OP        := "=" | "!=" | "<" | "<=" | ">" | ">="

Parsing knows nothing about the tenant: names are resolved (and rejected) by the compiler.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from siyu.segments.errors import SegmentSyntaxError

MAX_EXPRESSION_LENGTH = 2000
MAX_DAYS = 3650
MAX_DEPTH = 50

OPERATORS = ("=", "!=", "<", "<=", ">", ">=")
KEYWORDS = frozenset({"and", "or", "not"})


@dataclass(frozen=True)
class Token:
    kind: str  # word, string, number, date, days, op, punct, end
    text: str
    value: object
    pos: int


# ---- AST ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class And:
    items: tuple[Node, ...]


@dataclass(frozen=True)
class Or:
    items: tuple[Node, ...]


@dataclass(frozen=True)
class Not:
    item: Node


@dataclass(frozen=True)
class TagIs:
    name: str
    pos: int


@dataclass(frozen=True)
class StageIs:
    key: str
    pos: int


@dataclass(frozen=True)
class StaffIs:
    userid: str
    pos: int


@dataclass(frozen=True)
class AddedWithin:
    days: int
    pos: int


@dataclass(frozen=True)
class AddedBefore:
    day: date
    pos: int


@dataclass(frozen=True)
class AddedAfter:
    day: date
    pos: int


@dataclass(frozen=True)
class AttrCompare:
    key: str
    op: str
    value: str | Decimal | date
    pos: int
    value_pos: int


@dataclass(frozen=True)
class EventCount:
    event_type: str
    days: int
    op: str
    count: int
    pos: int


Leaf = TagIs | StageIs | StaffIs | AddedWithin | AddedBefore | AddedAfter | AttrCompare | EventCount
Node = And | Or | Not | Leaf


# ---- tokenizer --------------------------------------------------------------------------------

_DATE = re.compile(r"\d{4}-\d{2}-\d{2}(?![\w.])")
_DAYS = re.compile(r"(\d+)d(?!\w)")
_NUMBER = re.compile(r"-?\d+(\.\d+)?(?![\w.])")
_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_\-@]*")


def tokenize(expression: str) -> list[Token]:
    tokens: list[Token] = []
    i, n = 0, len(expression)
    while i < n:
        ch = expression[i]
        if ch.isspace():
            i += 1
            continue
        if ch == '"':
            token = _read_string(expression, i)
        elif ch in "():,.":
            token = Token("punct", ch, ch, i)
        elif ch in "=!<>":
            op = expression[i : i + 2] if expression[i : i + 2] in OPERATORS else ch
            if op not in OPERATORS:
                raise SegmentSyntaxError(
                    f"unknown operator {op!r}; use one of {' '.join(OPERATORS)}",
                    expression=expression,
                    position=i,
                )
            token = Token("op", op, op, i)
        elif ch.isdigit() or (ch == "-" and expression[i + 1 : i + 2].isdigit()):
            token = _read_number(expression, i)
        elif match := _WORD.match(expression, i):
            token = Token("word", match.group(), match.group(), i)
        else:
            hint = ' (names are quoted: tag:"高意向")' if not ch.isascii() else ""
            raise SegmentSyntaxError(
                f"unexpected character {ch!r}{hint}", expression=expression, position=i
            )
        tokens.append(token)
        i = token.pos + len(token.text)
    tokens.append(Token("end", "", None, n))
    return tokens


def _read_string(expression: str, start: int) -> Token:
    """A double-quoted string; ``\\"`` and ``\\\\`` are the only escapes."""
    chars: list[str] = []
    i = start + 1
    while i < len(expression):
        ch = expression[i]
        if ch == "\\" and expression[i + 1 : i + 2] in {'"', "\\"}:
            chars.append(expression[i + 1])
            i += 2
        elif ch == '"':
            return Token("string", expression[start : i + 1], "".join(chars), start)
        else:
            chars.append(ch)
            i += 1
    raise SegmentSyntaxError("unterminated string", expression=expression, position=start)


def _read_number(expression: str, start: int) -> Token:
    if match := _DATE.match(expression, start):
        try:
            day = date.fromisoformat(match.group())
        except ValueError:
            raise SegmentSyntaxError(
                f"{match.group()} is not a valid date", expression=expression, position=start
            ) from None
        return Token("date", match.group(), day, start)
    if match := _DAYS.match(expression, start):
        return Token("days", match.group(), int(match.group(1)), start)
    if match := _NUMBER.match(expression, start):
        return Token("number", match.group(), Decimal(match.group()), start)
    raise SegmentSyntaxError(
        "malformed number (write 3, 2.5, 90d or 2026-01-01)", expression=expression, position=start
    )


# ---- parser -----------------------------------------------------------------------------------


def parse(expression: str) -> Node:
    """Parse ``expression`` into an AST or raise ``SegmentSyntaxError`` pointing at the problem."""
    if not expression.strip():
        raise SegmentSyntaxError("the expression is empty", expression=expression, position=0)
    if len(expression) > MAX_EXPRESSION_LENGTH:
        raise SegmentSyntaxError(
            f"the expression is longer than {MAX_EXPRESSION_LENGTH} characters",
            expression=expression,
            position=MAX_EXPRESSION_LENGTH,
        )
    return _Parser(expression).parse()


class _Parser:
    def __init__(self, expression: str) -> None:
        self.expression = expression
        self.tokens = tokenize(expression)
        self.at = 0
        self.depth = 0

    # -- helpers
    @property
    def token(self) -> Token:
        return self.tokens[self.at]

    def error(self, message: str, token: Token | None = None) -> SegmentSyntaxError:
        where = (token or self.token).pos
        return SegmentSyntaxError(message, expression=self.expression, position=where)

    def is_keyword(self, word: str) -> bool:
        return self.token.kind == "word" and self.token.text.lower() == word

    def take(self, kind: str, text: str | None = None, *, what: str) -> Token:
        token = self.token
        if token.kind != kind or (text is not None and token.text != text):
            found = "the end of the expression" if token.kind == "end" else repr(token.text)
            raise self.error(f"expected {what}, found {found}")
        self.at += 1
        return token

    # -- grammar
    def parse(self) -> Node:
        node = self.or_expr()
        if self.token.kind != "end":
            raise self.error(f"expected 'and', 'or' or the end, found {self.token.text!r}")
        return node

    def or_expr(self) -> Node:
        items = [self.and_expr()]
        while self.is_keyword("or"):
            self.at += 1
            items.append(self.and_expr())
        return items[0] if len(items) == 1 else Or(tuple(items))

    def and_expr(self) -> Node:
        items = [self.unary()]
        while self.is_keyword("and"):
            self.at += 1
            items.append(self.unary())
        return items[0] if len(items) == 1 else And(tuple(items))

    def unary(self) -> Node:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise self.error(f"the expression nests deeper than {MAX_DEPTH} levels")
        try:
            if self.is_keyword("not"):
                self.at += 1
                return Not(self.unary())
            if self.token.kind == "punct" and self.token.text == "(":
                self.at += 1
                node = self.or_expr()
                self.take("punct", ")", what="')'")
                return node
            return self.predicate()
        finally:
            self.depth -= 1

    def predicate(self) -> Leaf:
        token = self.token
        if token.kind != "word" or token.text.lower() in KEYWORDS:
            found = "the end of the expression" if token.kind == "end" else repr(token.text)
            raise self.error(
                f"expected a condition (tag:, stage:, staff:, attr., added_within:, "
                f"added_before:, added_after:, count(…)), found {found}"
            )
        self.at += 1
        name = token.text
        if name == "attr":
            return self.attr(token)
        if name == "count":
            return self.count(token)
        if name not in {"tag", "stage", "staff", "added_within", "added_before", "added_after"}:
            raise self.error(f"unknown condition {name!r}", token)
        self.take("punct", ":", what=f"':' after {name}")
        if name == "tag":
            name_token = self.take("string", what='a quoted tag name: tag:"高意向"')
            return TagIs(str(name_token.value), token.pos)
        if name in {"stage", "staff"}:
            if self.token.kind not in {"word", "string"}:
                raise self.error(f"expected a {name} name after {name}:")
            value = str(self.tokens[self.at].value)
            self.at += 1
            return StageIs(value, token.pos) if name == "stage" else StaffIs(value, token.pos)
        if name == "added_within":
            return AddedWithin(self.days(), token.pos)
        day = self.take("date", what="a date like 2026-01-01").value
        assert isinstance(day, date)  # noqa: S101 (the tokenizer made it)
        return AddedBefore(day, token.pos) if name == "added_before" else AddedAfter(day, token.pos)

    def days(self) -> int:
        token = self.take("days", what="a number of days like 90d")
        days = int(token.value)  # type: ignore[call-overload]
        if not 1 <= days <= MAX_DAYS:
            raise self.error(f"days must be between 1 and {MAX_DAYS}", token)
        return days

    def attr(self, start: Token) -> AttrCompare:
        self.take("punct", ".", what="'.' after attr (attr.city)")
        key = self.take("word", what="a field key after attr.").text
        op = self.take("op", what=f"a comparison ({' '.join(OPERATORS)})").text
        token = self.token
        if token.kind not in {"string", "number", "date"}:
            raise self.error("expected a value: a quoted text, a number or a date")
        self.at += 1
        return AttrCompare(key, op, token.value, start.pos, token.pos)  # type: ignore[arg-type]

    def count(self, start: Token) -> EventCount:
        self.take("punct", "(", what="'(' after count")
        self.take("word", "event", what="event: inside count(…)")
        self.take("punct", ":", what="':' after event")
        event_type = self.take("string", what='a quoted event type: event:"content.opened"')
        self.take("punct", ",", what="',' and a number of days")
        days = self.days()
        self.take("punct", ")", what="')'")
        op = self.take("op", what=f"a comparison ({' '.join(OPERATORS)})").text
        number = self.take("number", what="a whole number")
        value = number.value
        assert isinstance(value, Decimal)  # noqa: S101 (the tokenizer made it)
        if value != value.to_integral_value() or value < 0:
            raise self.error("a count is compared with a whole number ≥ 0", number)
        return EventCount(str(event_type.value), days, op, int(value), start.pos)
