"""The small condition language of template files.

Grammar (``field`` names a sibling field in the same object)::

    expr    := and_expr ("or" and_expr)*
    and_expr:= unary ("and" unary)*
    unary   := "not" unary | "(" expr ")" | test
    test    := field                      # present and truthy
             | field ("==" | "!=") value  # present and (not) equal
             | field "in" "[" value ("," value)* "]"
             | field "contains" (value | "[" value ("," value)* "]")   # list has any of them

A value is a bare word, a quoted string, or ``true``/``false``. A comparison on an
absent field is false (so ``x != v`` does not hold when ``x`` is missing); on an enum or
bool field ``x != v`` means "x holds one of its other allowed values".
Conditions compile to JSON Schema (``if`` sub-schemas) and evaluate in Python with the
same meaning; :func:`bind` types the literals against the fields they name.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from broker.templating.model import FieldSpec, FieldType

_TOKEN = re.compile(
    r"\s*(?:(?P<op>==|!=|\(|\)|\[|\]|,)|'(?P<sq>[^']*)'|\"(?P<dq>[^\"]*)\"|(?P<word>[A-Za-z0-9_][A-Za-z0-9_.\-]*))"
)
_KEYWORDS = frozenset({"and", "or", "not", "in", "contains"})
_FALSY_JSON: list[Any] = [None, False, 0, "", [], {}]


@dataclass(frozen=True)
class RawValue:
    """A value as written: its text and whether it was quoted."""

    text: str
    quoted: bool


@dataclass(frozen=True)
class Compare:
    """``field == v``, ``field != v``, ``field in [..]`` or ``field contains [..]``."""

    field: str
    op: Literal["==", "!=", "in", "contains"]
    values: tuple[Any, ...]


@dataclass(frozen=True)
class Truthy:
    """``field``: present and not empty/false/zero."""

    field: str


@dataclass(frozen=True)
class Not:
    operand: Condition


@dataclass(frozen=True)
class BoolOp:
    op: Literal["and", "or"]
    operands: tuple[Condition, ...]


Condition = Compare | Truthy | Not | BoolOp


class ConditionSyntaxError(ValueError):
    """The condition text does not parse, or names a field or value that does not exist."""


def _tokenize(text: str) -> list[tuple[str, str]]:
    tokens: list[tuple[str, str]] = []
    pos = 0
    text = text.rstrip()
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if match is None or match.end() == pos:
            raise ConditionSyntaxError(f"unexpected character at offset {pos} in {text!r}")
        pos = match.end()
        if match["op"] is not None:
            tokens.append(("op", match["op"]))
        elif match["sq"] is not None or match["dq"] is not None:
            tokens.append(("str", match["sq"] if match["sq"] is not None else match["dq"]))
        else:
            word = match["word"]
            tokens.append(("kw" if word in _KEYWORDS else "word", word))
    return tokens


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = _tokenize(text)
        self.pos = 0

    def peek(self) -> tuple[str, str] | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def take(self, kind: str | None = None, value: str | None = None) -> tuple[str, str]:
        token = self.peek()
        if token is None or (kind and token[0] != kind) or (value and token[1] != value):
            wanted = value or kind or "a token"
            raise ConditionSyntaxError(f"expected {wanted} in condition {self.text!r}")
        self.pos += 1
        return token

    def accept(self, kind: str, value: str) -> bool:
        if self.peek() == (kind, value):
            self.pos += 1
            return True
        return False

    def parse(self) -> Condition:
        expr = self.expr()
        if self.peek() is not None:
            raise ConditionSyntaxError(f"unexpected token at the end of {self.text!r}")
        return expr

    def expr(self) -> Condition:
        operands = [self.and_expr()]
        while self.accept("kw", "or"):
            operands.append(self.and_expr())
        return operands[0] if len(operands) == 1 else BoolOp("or", tuple(operands))

    def and_expr(self) -> Condition:
        operands = [self.unary()]
        while self.accept("kw", "and"):
            operands.append(self.unary())
        return operands[0] if len(operands) == 1 else BoolOp("and", tuple(operands))

    def unary(self) -> Condition:
        if self.accept("kw", "not"):
            return Not(self.unary())
        if self.accept("op", "("):
            inner = self.expr()
            self.take("op", ")")
            return inner
        return self.test()

    def test(self) -> Condition:
        name = self.take("word")[1]
        if self.accept("op", "=="):
            return Compare(name, "==", (self.value(),))
        if self.accept("op", "!="):
            return Compare(name, "!=", (self.value(),))
        if self.accept("kw", "in"):
            return Compare(name, "in", self.value_list())
        if self.accept("kw", "contains"):
            if self.peek() == ("op", "["):
                return Compare(name, "contains", self.value_list())
            return Compare(name, "contains", (self.value(),))
        return Truthy(name)

    def value(self) -> RawValue:
        kind, text = self.take()
        if kind == "str":
            return RawValue(text, quoted=True)
        if kind == "word":
            return RawValue(text, quoted=False)
        raise ConditionSyntaxError(f"expected a value, got {text!r} in {self.text!r}")

    def value_list(self) -> tuple[RawValue, ...]:
        self.take("op", "[")
        values = [self.value()]
        while self.accept("op", ","):
            values.append(self.value())
        self.take("op", "]")
        return tuple(values)


def parse_condition(text: str) -> Condition:
    """Parse condition text into an unbound tree (literals not yet typed).

    Raises:
        ConditionSyntaxError: the text is not a condition.
    """
    if not text.strip():
        raise ConditionSyntaxError("empty condition")
    return _Parser(text).parse()


def _typed(literal: RawValue, ftype: FieldType, spec: FieldSpec) -> Any:
    leaf = ftype.leaf()
    if leaf.kind == "group":
        raise ConditionSyntaxError(f"cannot compare {spec.name!r}: it holds objects")
    if leaf.kind == "bool":
        if literal.quoted or literal.text not in ("true", "false"):
            raise ConditionSyntaxError(f"field {spec.name!r} is bool: use true or false")
        return literal.text == "true"
    if leaf.kind in ("enum", "multi_enum") and literal.text not in spec.allowed_values:
        raise ConditionSyntaxError(f"{literal.text!r} is not an allowed value of {spec.name!r}")
    return literal.text


def bind(condition: Condition, resolve: Callable[[str], FieldSpec | None]) -> Condition:
    """Check every field a condition names and type its literals against those fields.

    Args:
        condition: a tree from :func:`parse_condition`.
        resolve: looks up a sibling field by name (``None`` when it does not exist).

    Raises:
        ConditionSyntaxError: an unknown field, a value the field cannot take, or an
            operator that does not fit the field's type.
    """
    if isinstance(condition, Not):
        return Not(bind(condition.operand, resolve))
    if isinstance(condition, BoolOp):
        return BoolOp(condition.op, tuple(bind(c, resolve) for c in condition.operands))
    spec = resolve(condition.field)
    if spec is None:
        raise ConditionSyntaxError(f"names unknown field {condition.field!r}")
    if isinstance(condition, Truthy):
        return condition
    is_list = spec.type.kind in ("list", "multi_enum")
    if condition.op == "contains" and not is_list:
        raise ConditionSyntaxError(f"'contains' needs a list field; {spec.name!r} is not one")
    if condition.op != "contains" and (is_list or spec.type.kind == "group"):
        raise ConditionSyntaxError(f"{condition.op!r} needs a single value; {spec.name!r} is not")
    values = tuple(_typed(v, spec.type, spec) for v in condition.values)
    domain = _domain(spec)
    if condition.op == "!=" and domain:
        # "f != v" means "f holds another valid value": an invalid value is reported by
        # its own rule and does not also switch on fields that depend on it.
        return Compare(condition.field, "in", tuple(d for d in domain if not _same(d, values[0])))
    return Compare(condition.field, condition.op, values)


def _domain(spec: FieldSpec) -> tuple[Any, ...]:
    if spec.type.kind == "enum":
        return spec.allowed_values
    if spec.type.kind == "bool":
        return spec.allowed_values or (True, False)
    return ()


def fields_of(condition: Condition) -> frozenset[str]:
    """The field names a condition reads."""
    if isinstance(condition, Not):
        return fields_of(condition.operand)
    if isinstance(condition, BoolOp):
        return frozenset().union(*(fields_of(c) for c in condition.operands))
    return frozenset({condition.field})


def to_schema(condition: Condition) -> dict[str, Any]:
    """Compile a bound condition to a JSON Schema that an object satisfies iff it holds."""
    if isinstance(condition, Not):
        return {"not": to_schema(condition.operand)}
    if isinstance(condition, BoolOp):
        key = "allOf" if condition.op == "and" else "anyOf"
        return {key: [to_schema(c) for c in condition.operands]}
    if isinstance(condition, Truthy):
        test: dict[str, Any] = {"not": {"enum": list(_FALSY_JSON)}}
    elif condition.op == "==":
        test = {"const": condition.values[0]}
    elif condition.op == "!=":
        test = {"not": {"const": condition.values[0]}}
    elif condition.op == "in":
        test = {"enum": list(condition.values)}
    else:
        test = {"type": "array", "contains": {"enum": list(condition.values)}}
    return {"required": [condition.field], "properties": {condition.field: test}}


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a is b
    return bool(a == b)


def _truthy(value: Any) -> bool:
    if value is None or value is False:
        return False
    if isinstance(value, int | float) and not isinstance(value, bool):
        return value != 0
    if isinstance(value, str | list | tuple | dict):
        return len(value) > 0
    return True


def evaluate(condition: Condition, scope: Mapping[str, Any]) -> bool:
    """Evaluate a bound condition over one object (same meaning as :func:`to_schema`)."""
    if isinstance(condition, Not):
        return not evaluate(condition.operand, scope)
    if isinstance(condition, BoolOp):
        results = (evaluate(c, scope) for c in condition.operands)
        return all(results) if condition.op == "and" else any(results)
    if condition.field not in scope:
        return False
    value = scope[condition.field]
    if isinstance(condition, Truthy):
        return _truthy(value)
    return _compare(condition, value)


def _compare(condition: Compare, value: Any) -> bool:
    if condition.op == "==":
        return _same(value, condition.values[0])
    if condition.op == "!=":
        return not _same(value, condition.values[0])
    if condition.op == "in":
        return any(_same(value, v) for v in condition.values)
    return isinstance(value, list | tuple) and any(
        _same(item, v) for item in value for v in condition.values
    )
