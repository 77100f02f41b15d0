"""Build a checked :class:`TemplateDefinition` from the parsed data of a template file.

Pure: takes already-parsed data and the meta-schema, returns values or raises
:class:`broker.errors.TemplateError` (code ``TEMPLATE_DEFINITION_INVALID``) whose
message names the file and the field at fault.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from jsonschema import Draft202012Validator

from broker.errors import TemplateError
from broker.templating.conditions import (
    Condition,
    ConditionSyntaxError,
    bind,
    fields_of,
    parse_condition,
)
from broker.templating.model import (
    DATA_CATEGORIES,
    TEMPLATE_DEFINITION_INVALID,
    TEXT_TYPES,
    CategoryRule,
    Citation,
    Deadline,
    FieldGroup,
    FieldSpec,
    FieldType,
    Labels,
    Requirement,
    Roles,
    Section,
    TemplateDefinition,
)

MAX_REPORTED = 5
_REQUIREMENT = {True: Requirement.REQUIRED, False: Requirement.OPTIONAL}


class _Problem(Exception):
    """A definition error before the file name is attached."""

    def __init__(self, problem: str, field: str = "?") -> None:
        super().__init__(problem)
        self.problem = problem
        self.field = field


def definition_error(source: str, where: str, problem: str) -> TemplateError:
    """The error for a broken template file: ``<file>: <where>: <problem>``."""
    return TemplateError(f"{source}: {where}: {problem}", code=TEMPLATE_DEFINITION_INVALID)


def _locate(data: Any, path: list[Any]) -> str:
    """Describe a meta-schema error location by section/group and field name."""
    where: list[str] = []
    try:
        if len(path) >= 2 and path[0] == "sections":
            section = data["sections"][path[1]]
            where.append(f"section {section.get('id', path[1])!r}")
            if len(path) >= 4 and path[2] == "fields":
                where.append(f"field {section['fields'][path[3]].get('name', path[3])!r}")
        elif len(path) >= 2 and path[0] == "field_groups":
            where.append(f"field group {path[1]!r}")
            if len(path) >= 4 and path[2] == "fields":
                group_field = data["field_groups"][path[1]]["fields"][path[3]]
                where.append(f"field {group_field.get('name', path[3])!r}")
    except (KeyError, IndexError, TypeError, AttributeError):
        pass
    if not path:
        return "top level"
    return " ".join([*where, "at " + "/".join(str(p) for p in path)])


def check_meta(data: Any, meta: Draft202012Validator, source: str) -> None:
    """Check a file's structure against the meta-schema.

    Raises:
        TemplateError: naming the file and the field(s) that break the meta-schema.
    """
    errors = sorted(meta.iter_errors(data), key=lambda e: [str(p) for p in e.absolute_path])
    if not errors:
        return
    reports = [
        f"{_locate(data, list(e.absolute_path))}: {e.message[:300]}" for e in errors[:MAX_REPORTED]
    ]
    more = f" (+{len(errors) - MAX_REPORTED} more)" if len(errors) > MAX_REPORTED else ""
    raise TemplateError(f"{source}: {'; '.join(reports)}{more}", code=TEMPLATE_DEFINITION_INVALID)


def _labels(raw: Mapping[str, str]) -> Labels:
    return Labels(MappingProxyType(dict(raw)))


def _check_constraints(raw: Mapping[str, Any], ftype: FieldType) -> None:
    """Constraints must fit the field's type (a misplaced one would be silently ignored)."""
    allowed = raw.get("allowed_values", ())
    leaf = ftype.leaf().kind
    all_strings = all(isinstance(v, str) for v in allowed)
    if leaf in ("enum", "multi_enum") and (not allowed or not all_strings):
        raise _Problem(f"type {leaf} needs allowed_values (strings)")
    if allowed and leaf == "bool" and not all(isinstance(v, bool) for v in allowed):
        raise _Problem("allowed_values of a bool field must be true/false")
    if allowed and leaf not in ("enum", "multi_enum", "bool"):
        raise _Problem(f"allowed_values do not apply to type {ftype}")
    if "max_length" in raw and leaf not in TEXT_TYPES:
        raise _Problem(f"max_length does not apply to type {ftype}")
    if "max_items" in raw and ftype.kind != "list":
        raise _Problem("max_items applies to list types only")


def _field(raw: Mapping[str, Any]) -> FieldSpec:
    """A field with its condition parsed but not yet bound to its neighbours."""
    try:
        ftype = FieldType.parse(raw["type"])
    except ValueError as e:
        raise _Problem(str(e)) from e
    requirement = _REQUIREMENT.get(raw["required"], Requirement.CONDITIONAL)
    condition_text = raw.get("condition")
    if (requirement is Requirement.CONDITIONAL) != (condition_text is not None):
        raise _Problem("'required: conditional' and 'condition' go together")
    _check_constraints(raw, ftype)
    categories = frozenset(raw.get("data_category", ()))
    rules = tuple(
        CategoryRule(_parse(r["condition"]), frozenset(r["categories"]))
        for r in raw.get("data_category_when", ())
    )
    unknown = (categories.union(*(r.categories for r in rules))) - DATA_CATEGORIES
    if unknown:
        raise _Problem(f"unknown data categories {sorted(unknown)}")
    return FieldSpec(
        name=raw["name"],
        type=ftype,
        requirement=requirement,
        label=_labels(raw["label"]),
        condition=_parse(condition_text) if condition_text is not None else None,
        condition_text=condition_text,
        allowed_values=tuple(raw.get("allowed_values", ())),
        max_length=raw.get("max_length"),
        max_items=raw.get("max_items"),
        data_category=categories,
        category_rules=rules,
        description=raw.get("description", ""),
        verification=raw.get("verification"),
        note=raw.get("note", ""),
        example=raw.get("example"),
    )


def _parse(text: str) -> Condition:
    try:
        return parse_condition(text)
    except ConditionSyntaxError as e:
        raise _Problem(f"condition: {e}") from e


def _bind_scope(fields: list[FieldSpec], groups: Mapping[str, Any]) -> list[FieldSpec]:
    """Check names are unique, group references exist, and bind conditions to siblings."""
    by_name: dict[str, FieldSpec] = {}
    for spec in fields:
        if spec.name in by_name:
            raise _Problem("duplicate field name (payload keys are flat)", spec.name)
        by_name[spec.name] = spec
    bound = []
    for spec in fields:
        leaf = spec.type.leaf()
        if leaf.kind == "group" and leaf.group not in groups:
            raise _Problem(f"unknown field group {leaf.group!r}", spec.name)
        try:
            condition = bind(spec.condition, by_name.get) if spec.condition else None
            if condition is not None and spec.name in fields_of(condition):
                raise ConditionSyntaxError("a field's condition cannot name the field itself")
            rules = tuple(
                CategoryRule(bind(r.condition, by_name.get), r.categories)
                for r in spec.category_rules
            )
        except ConditionSyntaxError as e:
            raise _Problem(f"condition: {e}", spec.name) from e
        bound.append(dataclasses.replace(spec, condition=condition, category_rules=rules))
    return bound


def _parse_fields(raw_fields: list[Mapping[str, Any]], where: str, source: str) -> list[FieldSpec]:
    fields = []
    for raw in raw_fields:
        try:
            fields.append(_field(raw))
        except _Problem as e:
            raise definition_error(source, f"{where} field {raw['name']!r}", e.problem) from e
    return fields


def _check_group_cycles(groups: Mapping[str, FieldGroup], source: str) -> None:
    def visit(name: str, trail: tuple[str, ...]) -> None:
        if name in trail:
            chain = " -> ".join((*trail, name))
            raise definition_error(source, f"field group {name!r}", f"nesting cycle: {chain}")
        for spec in groups[name].fields:
            leaf = spec.type.leaf()
            if leaf.group is not None and leaf.group in groups:
                visit(leaf.group, (*trail, name))

    for group_name in groups:
        visit(group_name, ())


def _groups(data: Mapping[str, Any], source: str) -> dict[str, FieldGroup]:
    raw_groups: Mapping[str, Any] = data.get("field_groups", {})
    parsed = {
        name: _parse_fields(raw["fields"], f"field group {name!r}", source)
        for name, raw in raw_groups.items()
    }
    groups: dict[str, FieldGroup] = {}
    for name, raw in raw_groups.items():
        try:
            fields = _bind_scope(parsed[name], raw_groups)
        except _Problem as e:
            where = f"field group {name!r} field {e.field!r}"
            raise definition_error(source, where, e.problem) from e
        groups[name] = FieldGroup(
            name=name,
            label=_labels(raw["label"]),
            fields=tuple(fields),
            verification=raw.get("verification"),
            note=raw.get("note", ""),
        )
    _check_group_cycles(groups, source)
    return groups


def _deadlines(
    raw_deadlines: list[Mapping[str, Any]], fields: list[FieldSpec], source: str
) -> tuple[Deadline, ...]:
    """Deadlines with their conditions bound to the top-level fields.

    Raises:
        TemplateError: a duplicate name, an ``extends`` naming no other deadline, or a
            condition that does not parse or names an unknown field.
    """
    by_name = {f.name: f for f in fields}
    names = [d["name"] for d in raw_deadlines]
    deadlines = []
    for raw in raw_deadlines:
        where = f"deadline {raw['name']!r}"
        if names.count(raw["name"]) > 1:
            raise definition_error(source, where, "duplicate deadline name")
        extends = raw.get("extends", "")
        if extends and (extends not in names or extends == raw["name"]):
            raise definition_error(source, where, f"extends unknown deadline {extends!r}")
        text = raw.get("condition")
        try:
            condition = bind(parse_condition(text), by_name.get) if text is not None else None
        except ConditionSyntaxError as e:
            raise definition_error(source, where, f"condition: {e}") from e
        deadlines.append(
            Deadline(
                name=raw["name"],
                value=raw["value"],
                basis=raw["basis"],
                verification=raw["verification"],
                kind=raw.get("kind", ""),
                condition=condition,
                condition_text=text,
                starts=raw.get("starts", "receipt"),
                extends=extends,
                note=raw.get("note", ""),
            )
        )
    return tuple(deadlines)


def build_definition(data: Mapping[str, Any], source: str) -> TemplateDefinition:
    """Type and cross-check a template whose structure passed the meta-schema.

    Raises:
        TemplateError: naming ``source`` and the field at fault (unknown type or group,
            bad condition, duplicate name, misplaced constraint...).
    """
    groups = _groups(data, source)
    sections: list[Section] = []
    all_fields: list[FieldSpec] = []
    where_of: dict[str, str] = {}
    for raw_section in data["sections"]:
        where = f"section {raw_section['id']!r}"
        fields = _parse_fields(raw_section["fields"], where, source)
        for spec in fields:
            if spec.name in where_of:
                raise definition_error(
                    source,
                    f"{where} field {spec.name!r}",
                    f"duplicate field name, also in {where_of[spec.name]} (payload keys are flat)",
                )
            where_of[spec.name] = where
        all_fields.extend(fields)
        sections.append(
            Section(raw_section["id"], _labels(raw_section["title"]), tuple(f.name for f in fields))
        )
    if len({s.id for s in sections}) != len(sections):
        raise definition_error(source, "sections", "duplicate section id")
    try:
        bound = _bind_scope(all_fields, groups)
    except _Problem as e:
        where = where_of.get(e.field, "section ?")
        raise definition_error(source, f"{where} field {e.field!r}", e.problem) from e
    unserved = set(data.get("default_for", ())) - set(data["message_types"])
    if unserved:
        raise definition_error(source, "default_for", f"not in message_types: {sorted(unserved)}")
    roles = data["roles"]
    return TemplateDefinition(
        id=data["id"],
        version=data["version"],
        title=_labels(data["title"]),
        description=data.get("description", ""),
        message_types=tuple(data["message_types"]),
        default_for=tuple(data.get("default_for", ())),
        legal_basis=tuple(
            Citation(c["citation"], c["verification"], c.get("note", ""))
            for c in data["legal_basis"]
        ),
        provenance=MappingProxyType(dict(data["provenance"])),
        roles=Roles(tuple(roles["sender"]), tuple(roles["recipient"])),
        deadlines=_deadlines(data["deadlines"], bound, source),
        field_groups=MappingProxyType(groups),
        sections=tuple(sections),
        fields=tuple(bound),
        source=source,
    )
