"""Value objects of the template engine: field types, fields, groups, sections, errors.

A template definition is immutable once built; the loader builds it from a data file
and the compiler turns it into a JSON Schema. Nothing here does I/O.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from broker.errors import TemplateError

if TYPE_CHECKING:
    from broker.templating.conditions import Condition

LANGUAGES: tuple[str, ...] = ("en", "fr", "de")
"""Languages every label must carry."""

DEFAULT_LANGUAGE = "en"

SCALAR_TYPES: frozenset[str] = frozenset(
    {
        "string",
        "text",
        "date",
        "datetime_tz",
        "duration",
        "enum",
        "multi_enum",
        "bool",
        "country",
        "language",
        "reference",
        "sha256",
    }
)
TEXT_TYPES: frozenset[str] = frozenset({"string", "text", "reference"})

DATA_CATEGORIES: frozenset[str] = frozenset(
    {
        "subscriber",  # subscriber data (Budapest Art. 18(3); e-Evidence Art. 3)
        "identification",  # data for the sole purpose of identifying the user (IP + time)
        "traffic",
        "content",
        "person_identity",  # identity data of a natural person (names, birth, ids, address)
        "official_contact",  # contact details of the officials handling the case
        "suspect",  # LED Art. 6(a)
        "convicted",  # LED Art. 6(b)
        "victim",  # LED Art. 6(c)
        "other_party",  # LED Art. 6(d): witnesses, experts, contacts, third parties
        "child",
        "special_category",  # LED Art. 10
        "free_text",  # narrative that may hold personal data of any category
    }
)

_SEMVER = re.compile(r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)$")

TEMPLATE_INVALID = "TEMPLATE_INVALID"
TEMPLATE_UNKNOWN = "TEMPLATE_UNKNOWN"
TEMPLATE_DEFINITION_INVALID = "TEMPLATE_DEFINITION_INVALID"


def parse_version(text: str) -> tuple[int, int, int]:
    """Parse a ``MAJOR.MINOR.PATCH`` version into a sortable tuple.

    Raises:
        ValueError: the text is not a plain semantic version.
    """
    match = _SEMVER.match(text)
    if match is None:
        raise ValueError(f"not a semantic version MAJOR.MINOR.PATCH: {text!r}")
    return int(match[1]), int(match[2]), int(match[3])


class Requirement(StrEnum):
    """Whether a field must be present."""

    REQUIRED = "required"
    OPTIONAL = "optional"
    CONDITIONAL = "conditional"


@dataclass(frozen=True)
class FieldType:
    """A parsed field type: a scalar, ``group:<name>`` or ``list<...>``."""

    kind: str
    group: str | None = None
    item: FieldType | None = None

    @classmethod
    def parse(cls, text: str) -> FieldType:
        """Parse a type string such as ``list<group:identifier>``.

        Raises:
            ValueError: the string names no known type.
        """
        text = text.strip()
        if text.startswith("list<") and text.endswith(">"):
            return cls("list", item=cls.parse(text[5:-1]))
        if text.startswith("group:"):
            name = text[6:]
            if not re.fullmatch(r"[a-z][a-z0-9_]*", name):
                raise ValueError(f"bad group name in type {text!r}")
            return cls("group", group=name)
        if text in SCALAR_TYPES:
            return cls(text)
        raise ValueError(f"unknown field type {text!r}")

    def leaf(self) -> FieldType:
        """The innermost element type (itself for anything but a list)."""
        return self.item.leaf() if self.item is not None else self

    def __str__(self) -> str:
        if self.kind == "list":
            return f"list<{self.item}>"
        if self.kind == "group":
            return f"group:{self.group}"
        return self.kind


@dataclass(frozen=True)
class Labels:
    """Human-readable text in several languages."""

    values: Mapping[str, str]

    def get(self, lang: str = DEFAULT_LANGUAGE) -> str:
        """The text in ``lang``, falling back to English for a language not provided."""
        return self.values.get(lang) or self.values[DEFAULT_LANGUAGE]


@dataclass(frozen=True)
class CategoryRule:
    """Personal-data tags that apply when a condition on the field's object holds."""

    condition: Condition
    categories: frozenset[str]


@dataclass(frozen=True)
class FieldSpec:
    """One field of a template or of a field group."""

    name: str
    type: FieldType
    requirement: Requirement
    label: Labels
    condition: Condition | None = None
    condition_text: str | None = None
    allowed_values: tuple[Any, ...] = ()
    max_length: int | None = None
    max_items: int | None = None
    data_category: frozenset[str] = frozenset()
    category_rules: tuple[CategoryRule, ...] = ()
    description: str = ""
    verification: str | None = None
    note: str = ""
    example: Any = None


@dataclass(frozen=True)
class FieldGroup:
    """A reusable block of fields (``group:<name>``), validated as a nested object."""

    name: str
    label: Labels
    fields: tuple[FieldSpec, ...]
    verification: str | None = None
    note: str = ""

    def field(self, name: str) -> FieldSpec | None:
        """The member field called ``name``, if any."""
        return next((f for f in self.fields if f.name == name), None)


@dataclass(frozen=True)
class Section:
    """A presentation block of the form; its fields sit flat at the payload's top level."""

    id: str
    title: Labels
    field_names: tuple[str, ...]


@dataclass(frozen=True)
class Citation:
    """A legal basis with its verification tag (V read, R recalled, U uncertain)."""

    citation: str
    verification: str
    note: str = ""


@dataclass(frozen=True)
class Deadline:
    """A legal time limit carried as data (ISO 8601 duration) with its basis.

    Attributes:
        name: stable token (``production_emergency``).
        value: ISO 8601 duration (``PT8H``, ``P60D``).
        basis: the legal citation and wording it rests on.
        verification: V, R or U, as carried from the domain sources.
        kind: ``minimum`` (at least this long), ``maximum`` (at most), or unstated.
        condition: when set, the deadline applies only to payloads where it holds.
        starts: the event that starts the clock (``receipt`` unless stated).
        extends: the name of the deadline this one prolongs, if any.
    """

    name: str
    value: str
    basis: str
    verification: str
    kind: str = ""
    condition: Condition | None = None
    condition_text: str | None = None
    starts: str = "receipt"
    extends: str = ""
    note: str = ""


@dataclass(frozen=True)
class Roles:
    """Node roles that may send and receive messages built from the template."""

    sender: tuple[str, ...]
    recipient: tuple[str, ...]


@dataclass(frozen=True)
class TemplateDefinition:
    """Everything a template file says, checked and typed."""

    id: str
    version: str
    title: Labels
    message_types: tuple[str, ...]
    legal_basis: tuple[Citation, ...]
    provenance: Mapping[str, Any]
    roles: Roles
    deadlines: tuple[Deadline, ...]
    field_groups: Mapping[str, FieldGroup]
    sections: tuple[Section, ...]
    fields: tuple[FieldSpec, ...]
    source: str
    default_for: tuple[str, ...] = ()
    description: str = ""

    @property
    def version_key(self) -> tuple[int, int, int]:
        """The version as a sortable tuple."""
        return parse_version(self.version)

    def field(self, name: str) -> FieldSpec | None:
        """The top-level field called ``name``, if any."""
        return next((f for f in self.fields if f.name == name), None)


@dataclass(frozen=True)
class FieldError:
    """One reason a payload fails its template.

    Attributes:
        path: where, as ``/``-separated keys and list indexes (``data_to_preserve/0/observed_at``).
        rule: which rule failed (``required``, ``enum``, ``type``, ``format``, ``condition``...).
        label: the field's label in the requested language.
        message: a readable diagnosis; never contains the submitted value.
    """

    path: str
    rule: str
    label: str
    message: str


class TemplateValidationError(TemplateError):
    """A payload fails its template; ``errors`` lists every failed rule."""

    code = TEMPLATE_INVALID

    def __init__(self, message: str, errors: list[FieldError]) -> None:
        super().__init__(message, code=TEMPLATE_INVALID)
        self.errors: list[FieldError] = list(errors)
