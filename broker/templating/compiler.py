"""Compile a template definition to JSON Schema 2020-12 and build its validator.

Each field becomes a property; field groups become ``$defs`` referenced by ``$ref``;
every object rejects unknown keys; each ``required: conditional`` field becomes an
``if``/``then`` rule on the object that holds it. Formats are checked by our own
checker (date, date-time with a mandatory UTC offset, ISO 8601 duration, country and
language codes, SHA-256 digests), so the result does not depend on which optional jsonschema extras
are installed.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import date, datetime
from typing import Any

import jsonschema_rs
from jsonschema import Draft202012Validator, FormatChecker

from broker.templating.conditions import to_schema
from broker.templating.model import (
    FieldGroup,
    FieldSpec,
    FieldType,
    Requirement,
    TemplateDefinition,
)

SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"

DEFAULT_MAX_LENGTH = {"string": 500, "reference": 128, "text": 20_000}
DEFAULT_MAX_ITEMS = 1000

# No C0/C1 control characters and no bidirectional overrides/isolates (Trojan-source
# style reordering); multi-line text may hold tab, line feed and carriage return.
_FORBIDDEN = "\\x7f-\\x9f\\u202a-\\u202e\\u2066-\\u2069"
LINE_PATTERN = f"^[^\\x00-\\x1f{_FORBIDDEN}]*$"
TEXT_PATTERN = f"^[^\\x00-\\x08\\x0b\\x0c\\x0e-\\x1f{_FORBIDDEN}]*$"

FORMAT_DATE = "date"
FORMAT_DATETIME = "date-time"
FORMAT_DURATION = "duration"
FORMAT_COUNTRY = "iso3166-1-alpha-2"
FORMAT_LANGUAGE = "iso639-1"
FORMAT_SHA256 = "sha256-hex"

_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_DATETIME = re.compile(
    r"^(\d{4}-\d{2}-\d{2})[Tt](\d{2}:\d{2}:\d{2})(?:\.(\d{1,9}))?([Zz]|[+-]\d{2}:\d{2})$"
)
_DURATION = re.compile(
    r"^P(?!$)(\d+Y)?(\d+M)?(\d+W)?(\d+D)?(T(?=\d)(\d+H)?(\d+M)?(\d+(\.\d+)?S)?)?$"
)
_COUNTRY = re.compile(r"^[A-Z]{2}$")
_LANGUAGE = re.compile(r"^[a-z]{2}$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


def is_date(value: object) -> bool:
    """``YYYY-MM-DD`` naming a real calendar day (non-strings pass: type is checked elsewhere)."""
    if not isinstance(value, str):
        return True
    if not _DATE.match(value):
        return False
    try:
        date.fromisoformat(value)
    except ValueError:
        return False
    return True


def is_datetime_tz(value: object) -> bool:
    """RFC 3339 date-time that carries a UTC offset (``Z`` or ``+hh:mm``) and exists."""
    if not isinstance(value, str):
        return True
    match = _DATETIME.match(value)
    if match is None:
        return False
    day, clock, fraction, offset = match.groups()
    offset = "+00:00" if offset in ("Z", "z") else offset
    micro = f".{(fraction or '')[:6]:0<6}" if fraction else ""
    try:
        parsed = datetime.fromisoformat(f"{day}T{clock}{micro}{offset}")
    except ValueError:
        return False
    return parsed.tzinfo is not None


def is_duration(value: object) -> bool:
    """ISO 8601 duration such as ``P60D`` or ``PT24H``."""
    return not isinstance(value, str) or _DURATION.match(value) is not None


def _is_country(value: object) -> bool:
    return not isinstance(value, str) or _COUNTRY.match(value) is not None


def _is_language(value: object) -> bool:
    return not isinstance(value, str) or _LANGUAGE.match(value) is not None


def _is_sha256(value: object) -> bool:
    return not isinstance(value, str) or _SHA256.match(value) is not None


def make_format_checker() -> FormatChecker:
    """A format checker with exactly our formats (no silently skipped ones)."""
    checker = FormatChecker(formats=())
    checker.checks(FORMAT_DATE)(is_date)
    checker.checks(FORMAT_DATETIME)(is_datetime_tz)
    checker.checks(FORMAT_DURATION)(is_duration)
    checker.checks(FORMAT_COUNTRY)(_is_country)
    checker.checks(FORMAT_LANGUAGE)(_is_language)
    checker.checks(FORMAT_SHA256)(_is_sha256)
    return checker


FORMAT_CHECKER = make_format_checker()
FORMATS: dict[str, Callable[[Any], bool]] = {
    FORMAT_DATE: is_date, FORMAT_DATETIME: is_datetime_tz, FORMAT_DURATION: is_duration,
    FORMAT_COUNTRY: _is_country, FORMAT_LANGUAGE: _is_language, FORMAT_SHA256: _is_sha256,
}


def make_fast_validator(schema: dict[str, Any]) -> Any:
    """A compiled (Rust) validator that only answers valid or not, about 80x faster than
    jsonschema; a payload it rejects is re-checked by jsonschema for the readable errors.
    Both use the same schema and the same format functions; tests check they agree."""
    return jsonschema_rs.validator_for(schema, validate_formats=True, formats=FORMATS)


def _scalar_schema(ftype: FieldType, spec: FieldSpec) -> dict[str, Any]:
    kind = ftype.kind
    if kind in DEFAULT_MAX_LENGTH:
        return {
            "type": "string",
            "minLength": 1,
            "maxLength": spec.max_length or DEFAULT_MAX_LENGTH[kind],
            "pattern": TEXT_PATTERN if kind == "text" else LINE_PATTERN,
        }
    formats = {
        "date": FORMAT_DATE,
        "datetime_tz": FORMAT_DATETIME,
        "duration": FORMAT_DURATION,
        "country": FORMAT_COUNTRY,
        "language": FORMAT_LANGUAGE,
        "sha256": FORMAT_SHA256,
    }
    if kind in formats:
        return {"type": "string", "format": formats[kind]}
    if kind == "enum":
        return {"type": "string", "enum": list(spec.allowed_values)}
    if kind == "multi_enum":
        return {
            "type": "array",
            "items": {"type": "string", "enum": list(spec.allowed_values)},
            "minItems": 1,
            "maxItems": len(spec.allowed_values),
            "uniqueItems": True,
        }
    if kind == "bool":
        schema: dict[str, Any] = {"type": "boolean"}
        if spec.allowed_values:
            schema["enum"] = list(spec.allowed_values)
        return schema
    raise AssertionError(f"unhandled scalar type {kind}")  # pragma: no cover


def type_schema(ftype: FieldType, spec: FieldSpec) -> dict[str, Any]:
    """The schema of one value of ``ftype`` (field-level limits taken from ``spec``)."""
    if ftype.kind == "group":
        return {"$ref": f"#/$defs/{ftype.group}"}
    if ftype.kind == "list":
        assert ftype.item is not None
        return {
            "type": "array",
            "items": type_schema(ftype.item, spec),
            "minItems": 1,
            "maxItems": spec.max_items or DEFAULT_MAX_ITEMS,
        }
    return _scalar_schema(ftype, spec)


def object_schema(fields: tuple[FieldSpec, ...]) -> dict[str, Any]:
    """A closed object of ``fields`` with its required and conditionally required keys."""
    properties: dict[str, Any] = {}
    for spec in fields:
        schema = type_schema(spec.type, spec)
        properties[spec.name] = {"title": spec.label.get(), **schema}
        if spec.description:
            properties[spec.name]["description"] = spec.description
    result: dict[str, Any] = {
        "type": "object",
        "properties": properties,
        "required": [f.name for f in fields if f.requirement is Requirement.REQUIRED],
        "additionalProperties": False,
    }
    rules = [
        {"if": to_schema(f.condition), "then": {"required": [f.name]}}
        for f in fields
        if f.requirement is Requirement.CONDITIONAL and f.condition is not None
    ]
    if rules:
        result["allOf"] = rules
    return result


def _group_schema(group: FieldGroup) -> dict[str, Any]:
    return {"title": group.label.get(), **object_schema(group.fields)}


def compile_schema(definition: TemplateDefinition) -> dict[str, Any]:
    """Compile a whole template to one JSON Schema 2020-12 document."""
    schema: dict[str, Any] = {
        "$schema": SCHEMA_DIALECT,
        "$id": f"urn:rogatory:template:{definition.id}:{definition.version}",
        "title": definition.title.get(),
        **object_schema(definition.fields),
    }
    if definition.field_groups:
        schema["$defs"] = {
            name: _group_schema(group) for name, group in sorted(definition.field_groups.items())
        }
    return schema


def make_validator(schema: dict[str, Any], *, check: bool = False) -> Draft202012Validator:
    """A reusable validator for a compiled schema.

    Args:
        schema: output of :func:`compile_schema`.
        check: also check the schema against the 2020-12 meta-schema. Off at load time
            (it cost ~0.1 s per template at every node start for output this module
            produces); the test suite checks every shipped template's compiled schema.
    """
    if check:
        Draft202012Validator.check_schema(schema)
    return Draft202012Validator(inline_refs(schema), format_checker=FORMAT_CHECKER)


_ANNOTATIONS = frozenset({"title", "description"})


def inline_refs(schema: dict[str, Any]) -> dict[str, Any]:
    """The same schema with every local ``$ref`` replaced by its ``$defs`` entry.

    Field groups cannot nest cyclically (the loader refuses cycles), so the expansion is
    finite. Resolving ``$ref`` through jsonschema's registry took about three quarters of
    each validation (bench profile); the validator gets the expanded copy, while
    ``Template.json_schema`` keeps the readable form with ``$defs``.
    """
    defs = schema.get("$defs", {})

    def expand(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/$defs/"):
                target = expand(defs[ref[len("#/$defs/"):]])
                siblings = {k: expand(v) for k, v in node.items() if k != "$ref"}
                if set(siblings) <= _ANNOTATIONS:
                    return {**target, **siblings}
                return {"allOf": [target], **siblings}
            return {k: expand(v) for k, v in node.items() if k != "$defs"}
        if isinstance(node, list):
            return [expand(v) for v in node]
        return node

    return {k: expand(v) for k, v in schema.items() if k != "$defs"}
