"""A loaded template: its definition, compiled schema and validator."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from broker.templating import payload as _payload
from broker.templating.compiler import compile_schema, make_fast_validator, make_validator
from broker.templating.conditions import evaluate
from broker.templating.model import (
    DEFAULT_LANGUAGE,
    Citation,
    Deadline,
    FieldError,
    FieldGroup,
    FieldSpec,
    Roles,
    Section,
    TemplateDefinition,
    TemplateValidationError,
)
from broker.templating.validate import collect_errors, summarise


class Template:
    """One version of one template, ready to validate payloads.

    The JSON Schema is compiled and its validator built once, at construction.
    """

    __slots__ = ("_definition", "_fast", "_schema", "_validator")

    def __init__(self, definition: TemplateDefinition) -> None:
        self._definition = definition
        self._schema = compile_schema(definition)
        self._validator = make_validator(self._schema)
        self._fast = make_fast_validator(self._schema)

    def __repr__(self) -> str:
        return f"Template({self.id!r}, {self.version!r})"

    @property
    def definition(self) -> TemplateDefinition:
        """The typed content of the template file."""
        return self._definition

    @property
    def id(self) -> str:
        return self._definition.id

    @property
    def version(self) -> str:
        return self._definition.version

    @property
    def version_key(self) -> tuple[int, int, int]:
        """The version as a sortable ``(major, minor, patch)``."""
        return self._definition.version_key

    @property
    def message_types(self) -> tuple[str, ...]:
        return self._definition.message_types

    @property
    def legal_basis(self) -> tuple[Citation, ...]:
        return self._definition.legal_basis

    @property
    def provenance(self) -> Mapping[str, Any]:
        return self._definition.provenance

    @property
    def roles(self) -> Roles:
        return self._definition.roles

    @property
    def deadlines(self) -> tuple[Deadline, ...]:
        return self._definition.deadlines

    @property
    def sections(self) -> tuple[Section, ...]:
        return self._definition.sections

    @property
    def fields(self) -> tuple[FieldSpec, ...]:
        """Top-level fields, in section order."""
        return self._definition.fields

    @property
    def field_groups(self) -> Mapping[str, FieldGroup]:
        return self._definition.field_groups

    @property
    def json_schema(self) -> dict[str, Any]:
        """The compiled JSON Schema 2020-12 (a copy: callers cannot alter the validator's)."""
        return copy.deepcopy(self._schema)

    def title(self, lang: str = DEFAULT_LANGUAGE) -> str:
        """The template's title in ``lang`` (English when that language is not provided)."""
        return self._definition.title.get(lang)

    def check(self, payload: Mapping[str, Any], lang: str = DEFAULT_LANGUAGE) -> list[FieldError]:
        """Every rule ``payload`` breaks; empty when it is valid.

        Args:
            payload: the form's JSON object, keyed by field name (flat across sections).
            lang: language of the labels and messages in the errors.
        """
        if self._fast.is_valid(payload):
            return []
        return collect_errors(self._validator, self._definition, payload, lang)

    def validate(self, payload: Mapping[str, Any], lang: str = DEFAULT_LANGUAGE) -> None:
        """Raise if ``payload`` breaks any rule.

        Raises:
            TemplateValidationError: a :class:`broker.errors.TemplateError` with code
                ``TEMPLATE_INVALID`` whose ``errors`` lists every failure; its message
                names paths and rules only, never submitted values.
        """
        errors = self.check(payload, lang)
        if errors:
            raise TemplateValidationError(f"{self.id} {self.version}: {summarise(errors)}", errors)

    def deadlines_for(self, payload: Mapping[str, Any]) -> tuple[Deadline, ...]:
        """The legal deadlines a message with ``payload`` starts.

        Those without a condition always apply; a conditional one applies when its
        condition holds on the payload's top-level fields (e.g. an EPOC whose
        ``deadline`` is ``within_8_hours_emergency`` starts the 8-hour limit, not the
        10-day one). Validate the payload first if the answer must be exact.
        """
        return tuple(
            d
            for d in self._definition.deadlines
            if d.condition is None or evaluate(d.condition, payload)
        )

    def data_categories(self, payload: Mapping[str, Any]) -> frozenset[str]:
        """Personal-data tags of the fields present in ``payload``."""
        return _payload.data_categories(self._definition, payload)

    def skeleton(self) -> dict[str, Any]:
        """An example payload that validates against this template."""
        return _payload.skeleton(self._definition)
