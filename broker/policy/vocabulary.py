"""The words the packs use: roles, data categories, declarations and obligations.

Parsed from ``policy/vocabulary.yaml``. Declarations are type-checked here before they
reach Cedar, so a wrong type or an unknown name is a readable denial, not an evaluation
error deep in a policy.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from broker.policy.yamlsrc import Located, choice, fail, mapping, names, text

VOCABULARY_FILE = "vocabulary.yaml"
DECLARATION_TYPES = ("string", "bool", "long", "enum")
CARRIED_OBLIGATIONS = "obligations"
MAX_STRING = 4096
LONG_RANGE = (-(2**63), 2**63 - 1)


@dataclass(frozen=True)
class Declaration:
    name: str
    type: str
    values: tuple[str, ...]
    text: str


@dataclass(frozen=True)
class ObligationSpec:
    id: str
    text: str
    source: str
    verification: str
    params: tuple[str, ...]


@dataclass(frozen=True)
class Vocabulary:
    competent_roles: frozenset[str]
    private_roles: frozenset[str]
    subject_categories: frozenset[str]
    other_categories: frozenset[str]
    declarations: Mapping[str, Declaration]
    obligations: Mapping[str, ObligationSpec]

    def check_declared(self, declared: Mapping[str, Any]) -> tuple[dict[str, Any], list[str]]:
        """Split ``declared`` into the Cedar ``declared`` record and the carried obligations.

        Empty strings and None count as not declared.

        Raises:
            ValueError: an unknown name, a wrong type or an enum value not listed.
        """
        record: dict[str, Any] = {}
        carried: list[str] = []
        for name, value in declared.items():
            if name == CARRIED_OBLIGATIONS:
                carried = _obligation_ids(value)
                continue
            spec = self.declarations.get(name)
            if spec is None:
                raise ValueError(f"unknown declaration {name!r} (see policy/vocabulary.yaml)")
            if value is None or value == "":
                continue
            record[name] = _typed(spec, value)
        return record, carried


def _obligation_ids(value: Any) -> list[str]:
    if not isinstance(value, list | tuple | frozenset | set):
        raise ValueError("declaration 'obligations' must be a list of obligation ids")
    out: list[str] = []
    for item in value:
        oid = item.get("id") if isinstance(item, Mapping) else item
        if not isinstance(oid, str) or not oid:
            raise ValueError("declaration 'obligations' holds an entry without an id")
        out.append(oid)
    return out


def _typed(spec: Declaration, value: Any) -> Any:
    if spec.type == "bool":
        if not isinstance(value, bool):
            raise ValueError(f"declaration {spec.name!r} must be true or false")
        return value
    if spec.type == "long":
        if isinstance(value, bool) or not isinstance(value, int) or not (
                LONG_RANGE[0] <= value <= LONG_RANGE[1]):
            raise ValueError(f"declaration {spec.name!r} must be an integer")
        return value
    if not isinstance(value, str) or len(value) > MAX_STRING:
        raise ValueError(f"declaration {spec.name!r} must be a string of at most "
                         f"{MAX_STRING} characters")
    if spec.type == "enum" and value not in spec.values:
        raise ValueError(f"declaration {spec.name!r}: {value!r} is not one of "
                         f"{', '.join(spec.values)}")
    return value


def _declaration(src: str, name: str, e: Located) -> Declaration:
    kind = choice(src, e, "type", DECLARATION_TYPES)
    values = names(src, e, "values") if kind == "enum" else ()
    return Declaration(name=name, type=kind, values=values, text=text(src, e, "text"))


def _obligation(src: str, oid: str, e: Located, declarations: Mapping[str, Declaration]
                ) -> ObligationSpec:
    params = names(src, e, "params") if "params" in e else ()
    for p in params:
        if p not in declarations:
            fail(src, e.line_of("params"), f"obligation {oid}: unknown declaration {p!r}")
    verification = str(e.get("verification", ""))
    if verification[:1] not in ("V", "R", "U", "E"):
        fail(src, e.line_of("verification"), f"obligation {oid}: verification must start "
             "with V, R, U or E")
    return ObligationSpec(id=oid, text=text(src, e, "text"), source=text(src, e, "source"),
                          verification=verification, params=params)


def parse_vocabulary(doc: Any) -> Vocabulary:
    """Build the :class:`Vocabulary` from the parsed ``vocabulary.yaml``.

    Raises:
        ConfigError: naming ``file:line`` of the first malformed entry.
    """
    src = VOCABULARY_FILE
    v = mapping(src, doc, "document", 1)
    roles = mapping(src, v.get("roles"), "roles", v.line_of("roles"))
    cats = mapping(src, v.get("categories"), "categories", v.line_of("categories"))
    decl_map = mapping(src, v.get("declarations"), "declarations", v.line_of("declarations"))
    declarations = {n: _declaration(src, n, mapping(src, e, n, decl_map.line_of(n)))
                    for n, e in decl_map.items()}
    if CARRIED_OBLIGATIONS in declarations:
        fail(src, decl_map.line_of(CARRIED_OBLIGATIONS), "'obligations' is reserved")
    obl_map = mapping(src, v.get("obligations"), "obligations", v.line_of("obligations"))
    obligations = {o: _obligation(src, o, mapping(src, e, o, obl_map.line_of(o)), declarations)
                   for o, e in obl_map.items()}
    return Vocabulary(
        competent_roles=frozenset(names(src, roles, "competent")),
        private_roles=frozenset(names(src, roles, "private")),
        subject_categories=frozenset(names(src, cats, "subject_data")),
        other_categories=frozenset(names(src, cats, "other")),
        declarations=declarations, obligations=obligations)
