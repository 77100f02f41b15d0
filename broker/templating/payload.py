"""Walks over payloads guided by a template: personal-data tags and example payloads.

Payload shape: a JSON object keyed by field name, flat across sections (sections are
presentation only); ``group:<name>`` fields hold nested objects and ``list<...>``
fields hold arrays.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from broker.templating.conditions import evaluate
from broker.templating.model import (
    FieldSpec,
    FieldType,
    Requirement,
    TemplateDefinition,
)

MAX_WALK_ITEMS = 10_000

_EXAMPLES: dict[str, Any] = {
    "string": "Example",
    "text": "Example text.",
    "reference": "REF-2026-0001",
    "date": "2026-01-15",
    "datetime_tz": "2026-01-15T10:30:00+01:00",
    "duration": "P30D",
    "country": "FR",
    "language": "en",
    "sha256": "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
}


def _present(value: Any) -> bool:
    if isinstance(value, str | list | dict):
        return len(value) > 0
    return value is not None


def data_categories(definition: TemplateDefinition, payload: Any) -> frozenset[str]:
    """Personal-data tags of the fields present (non-empty) in ``payload``.

    The walk follows the template and ignores anything it does not define, so it is
    safe on an unvalidated payload; validate first if the answer must be exact.
    """
    found: set[str] = set()
    _walk_object(definition, definition.fields, payload, found)
    return frozenset(found)


def _walk_object(
    definition: TemplateDefinition, fields: tuple[FieldSpec, ...], obj: Any, found: set[str]
) -> None:
    if not isinstance(obj, Mapping):
        return
    for spec in fields:
        value = obj.get(spec.name)
        if not _present(value):
            continue
        found.update(spec.data_category)
        for rule in spec.category_rules:
            if evaluate(rule.condition, obj):
                found.update(rule.categories)
        _walk_value(definition, spec.type, value, found)


def _walk_value(
    definition: TemplateDefinition, ftype: FieldType, value: Any, found: set[str]
) -> None:
    if ftype.group is not None and ftype.group in definition.field_groups:
        _walk_object(definition, definition.field_groups[ftype.group].fields, value, found)
    elif ftype.kind == "list" and ftype.item is not None and isinstance(value, list):
        for item in value[:MAX_WALK_ITEMS]:
            _walk_value(definition, ftype.item, item, found)


def skeleton(definition: TemplateDefinition) -> dict[str, Any]:
    """An example payload that validates: required fields, plus conditional ones whose
    condition the example values make true. Values come from each field's ``example``
    in the template file, else from a per-type default."""
    return _example_object(definition, definition.fields)


def _example_object(
    definition: TemplateDefinition, fields: tuple[FieldSpec, ...]
) -> dict[str, Any]:
    obj: dict[str, Any] = {
        spec.name: _example_field(definition, spec)
        for spec in fields
        if spec.requirement is Requirement.REQUIRED
    }
    pending = [f for f in fields if f.requirement is Requirement.CONDITIONAL]
    changed = True
    while changed:  # a conditional field may switch on another one
        changed = False
        for spec in pending:
            if spec.name not in obj and spec.condition and evaluate(spec.condition, obj):
                obj[spec.name] = _example_field(definition, spec)
                changed = True
    return {spec.name: obj[spec.name] for spec in fields if spec.name in obj}


def _example_field(definition: TemplateDefinition, spec: FieldSpec) -> Any:
    if spec.example is not None:
        return copy.deepcopy(spec.example)
    return _example_value(definition, spec.type, spec)


def _example_value(definition: TemplateDefinition, ftype: FieldType, spec: FieldSpec) -> Any:
    if ftype.item is not None:
        return [_example_value(definition, ftype.item, spec)]
    if ftype.group is not None:
        return _example_object(definition, definition.field_groups[ftype.group].fields)
    first = spec.allowed_values[0] if spec.allowed_values else None
    examples = {"enum": first, "multi_enum": [first], "bool": bool(first)}
    if ftype.kind in examples:
        return examples[ftype.kind]
    value: str = _EXAMPLES[ftype.kind]
    return value[: spec.max_length] if spec.max_length else value
