"""Read a legal basis and declarations from a template payload (instruments.yaml mappings).

Used by ``rogatory policy explain`` and available to the node: the mapping is data
(``templates.<id>.basis_from_payload`` / ``declared_from_payload``), so lawyers decide
which form fields count as which declaration. Paths: ``a.b`` and ``list[].field``; a list
of booleans counts as true when any is true; a string takes the first non-empty value.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from broker.policy.facts import Facts
from broker.policy.vocabulary import Vocabulary


def legal_basis_for(facts: Facts, template_id: str, payload: Mapping[str, Any]) -> str:
    """The first value of the mapped payload field that the mapping knows, else the
    template's ``default_basis``; an unknown template gives "" (which decide denies)."""
    t = facts.templates.get(template_id)
    if t is None:
        return ""
    spec = t.basis_from_payload
    if spec:
        values = payload.get(str(spec["field"]))
        mapping = spec.get("map") or {}
        for value in values if isinstance(values, list) else [values]:
            if isinstance(value, str) and value in mapping:
                return str(mapping[value])
    return t.default_basis


def declared_from_payload(facts: Facts, vocabulary: Vocabulary, template_id: str,
                          payload: Mapping[str, Any]) -> dict[str, Any]:
    """Declarations read from ``payload`` by the template's ``declared_from_payload``."""
    t = facts.templates.get(template_id)
    out: dict[str, Any] = {}
    if t is None:
        return out
    for name, path in t.declared_from_payload.items():
        values = _walk(payload, path.split("."))
        spec = vocabulary.declarations.get(name)
        if spec is None or not values:
            continue
        if spec.type == "bool":
            bools = [x for x in values if isinstance(x, bool)]
            if bools:
                out[name] = any(bools)
        else:
            found = next((x for x in values if x not in (None, "", [], {})), None)
            if found is not None:
                out[name] = found
    return out


def _walk(value: Any, steps: list[str]) -> list[Any]:
    if not steps:
        return [value]
    step, rest = steps[0], steps[1:]
    if step.endswith("[]"):
        items = value.get(step[:-2]) if isinstance(value, Mapping) else None
        if not isinstance(items, list):
            return []
        return [x for item in items for x in _walk(item, rest)]
    if not isinstance(value, Mapping) or step not in value:
        return []
    return _walk(value[step], rest)
