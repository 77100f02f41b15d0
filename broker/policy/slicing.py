"""Policy slicing: evaluate only the policies that can apply to a request.

Cedar evaluates every policy of a set, so the cost of a decision grows with the packs.
Most policies start with conditions on facts the engine computes before evaluation (the
legal basis, its family, the regime, the direction, booleans such as ``third_country``).
A :class:`Guard` reads those conditions from the top-level ``&&`` chain of a policy's
``when`` clauses; a policy whose guard rejects a request's :class:`SliceKey` cannot
apply to it and is left out of that request's Cedar policy set. The analysis is
conservative: an expression it does not recognise constrains nothing.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

SLICE_STRINGS = ("legal_basis", "regime", "direction")
SLICE_BOOLS = ("third_country", "personal_data", "recipient_competent", "recipient_private",
               "sender_competent", "facts_stale", "unknown_obligations",
               "template_allows_basis")


@dataclass(frozen=True)
class SliceKey:
    """The pre-computed facts of a request that guards may test."""

    action: str
    family: str
    strings: tuple[str, ...]  # values of SLICE_STRINGS, in order
    bools: tuple[bool, ...]  # values of SLICE_BOOLS, in order

    @classmethod
    def of(cls, action: str, family: str, context: Mapping[str, Any]) -> SliceKey:
        return cls(action, family, tuple(str(context[k]) for k in SLICE_STRINGS),
                   tuple(bool(context[k]) for k in SLICE_BOOLS))


@dataclass(frozen=True)
class Guard:
    """Necessary conditions of one policy: allowed values per string, required booleans."""

    families: frozenset[str] | None
    strings: Mapping[str, frozenset[str]]
    bools: Mapping[str, bool]

    def admits(self, key: SliceKey) -> bool:
        if self.families is not None and key.family not in self.families:
            return False
        for name, value in zip(SLICE_STRINGS, key.strings, strict=True):
            allowed = self.strings.get(name)
            if allowed is not None and value not in allowed:
                return False
        for name, flag in zip(SLICE_BOOLS, key.bools, strict=True):
            if self.bools.get(name, flag) != flag:
                return False
        return True


def _conjuncts(expr: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
    if "&&" in expr:
        yield from _conjuncts(expr["&&"]["left"])
        yield from _conjuncts(expr["&&"]["right"])
    else:
        yield expr


def _context_path(expr: Any) -> str | None:
    """``context.a`` -> ``a``; ``context.a.b`` -> ``a.b``; anything else -> None."""
    if not isinstance(expr, Mapping) or "." not in expr:
        return None
    left, attr = expr["."]["left"], expr["."]["attr"]
    if left == {"Var": "context"}:
        return str(attr)
    inner = _context_path(left)
    return f"{inner}.{attr}" if inner else None


def _string_values(expr: Any) -> frozenset[str] | None:
    if isinstance(expr, Mapping) and isinstance(expr.get("Value"), str):
        return frozenset({expr["Value"]})
    if isinstance(expr, Mapping) and isinstance(expr.get("Set"), list):
        values = [v.get("Value") for v in expr["Set"] if isinstance(v, Mapping)]
        if values and all(isinstance(v, str) for v in values):
            return frozenset(str(v) for v in values)
    return None


def _constraint(expr: Mapping[str, Any]) -> tuple[str, frozenset[str] | bool] | None:
    if "==" in expr:
        path, values = _context_path(expr["=="]["left"]), _string_values(expr["=="]["right"])
        if path and values is not None and len(values) == 1:
            return path, values
    if "contains" in expr:
        path = _context_path(expr["contains"]["right"])
        values = _string_values(expr["contains"]["left"])
        if path and values is not None and "Set" in expr["contains"]["left"]:
            return path, values
    if "!" in expr:
        path = _context_path(expr["!"]["arg"])
        return (path, False) if path in SLICE_BOOLS else None
    path = _context_path(expr)
    return (path, True) if path in SLICE_BOOLS else None


def guard_of(est: Mapping[str, Any]) -> Guard:
    """The guard of a policy from its Cedar JSON (EST) form."""
    families: frozenset[str] | None = None
    strings: dict[str, frozenset[str]] = {}
    bools: dict[str, bool] = {}
    for condition in est.get("conditions", []):
        if condition.get("kind") != "when":
            continue
        for conjunct in _conjuncts(condition["body"]):
            found = _constraint(conjunct)
            if found is None:
                continue
            path, value = found
            if isinstance(value, bool):
                if bools.get(path, value) != value:
                    return Guard(frozenset(), {}, {})  # contradictory: never applies
                bools[path] = value
            elif path == "instrument.family":
                families = value if families is None else families & value
            elif path in SLICE_STRINGS:
                strings[path] = strings[path] & value if path in strings else value
    return Guard(families, strings, bools)
