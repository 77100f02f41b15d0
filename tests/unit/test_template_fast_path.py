"""The compiled fast validator and jsonschema (which explains failures) always agree.

A payload the fast path accepts is never checked again, so a disagreement would let an
invalid payload through: mutate every shipped template's example in many ways and
compare the two verdicts."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from broker.templating.compiler import make_fast_validator
from tests.harness import REGISTRY

pytestmark = pytest.mark.unit

TEMPLATES = REGISTRY.templates()
NASTY = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False),
    st.text(max_size=30), st.text(alphabet=st.characters(max_codepoint=0x2070), max_size=12),
    st.sampled_from(["", "x" * 600, "2026-02-30", "2026-11-18T21:14:05", "P1X", "de", "DE",
                     "a\u202eb", "a\x00b", "a\nb", "0" * 64, "g" * 64]),
    st.lists(st.text(max_size=5), max_size=3), st.dictionaries(st.text(max_size=5),
                                                               st.integers(), max_size=2))


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix] if prefix else []
    if isinstance(value, dict):
        for k, v in value.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            out += _paths(v, (*prefix, i))
    return out


@settings(max_examples=400, deadline=None)
@given(st.sampled_from(TEMPLATES), st.data())
def test_fast_path_agrees_with_jsonschema(template: Any, data: st.DataObject) -> None:
    payload = copy.deepcopy(template.skeleton())
    fast = make_fast_validator(template.json_schema)
    for _ in range(data.draw(st.integers(1, 3))):
        paths = _paths(payload)
        if not paths:
            break
        path = data.draw(st.sampled_from(paths))
        parent = payload
        for part in path[:-1]:
            parent = parent[part]
        action = data.draw(st.sampled_from(["set", "delete", "add"]))
        if action == "delete":
            del parent[path[-1]]
        elif action == "add" and isinstance(parent, dict):
            parent[data.draw(st.text(min_size=1, max_size=8))] = data.draw(NASTY)
        else:
            parent[path[-1]] = data.draw(NASTY)
    assert fast.is_valid(payload) == (template.check(payload) == [] and
                                      not list(template._validator.iter_errors(payload)))


@pytest.mark.parametrize("template", TEMPLATES, ids=lambda t: t.id)
def test_every_skeleton_passes_both(template: Any) -> None:
    assert make_fast_validator(template.json_schema).is_valid(template.skeleton())
    assert not list(template._validator.iter_errors(template.skeleton()))
