"""YAML data files with line numbers, so that a broken fact or table names its file and line.

Mappings load as :class:`Located` (a dict that remembers the line of each key); duplicate
keys are refused, as PyYAML would otherwise keep the last one silently.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, NoReturn

import yaml

from broker.errors import ConfigError

POLICY_CONFIG = "POLICY_CONFIG_INVALID"


class Located(dict[str, Any]):
    """A YAML mapping with the 1-based line of the mapping and of each key."""

    line: int = 0
    key_lines: dict[str, int]

    def line_of(self, key: str) -> int:
        return self.key_lines.get(key, self.line)


_Base: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml when available


class _Loader(_Base):  # type: ignore[misc]
    pass


def _mapping(loader: _Loader, node: yaml.MappingNode) -> Located:
    loader.flatten_mapping(node)
    out = Located()
    out.line = node.start_mark.line + 1
    out.key_lines = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        if key in out:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r}", key_node.start_mark)
        out[str(key)] = loader.construct_object(value_node, deep=True)
        out.key_lines[str(key)] = key_node.start_mark.line + 1
    return out


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping)


def fail(source: str, line: int, message: str) -> NoReturn:
    """Raise the ConfigError every data-file problem becomes: ``file:line: message``."""
    raise ConfigError(f"{source}:{line}: {message}", code=POLICY_CONFIG)


def parse_yaml(source: str, text: str) -> Any:
    """Parse one YAML document; syntax errors name the file and line."""
    try:
        return yaml.load(text, Loader=_Loader)  # noqa: S506 - _Loader is a (C)SafeLoader
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        fail(source, mark.line + 1 if mark else 0, str(e.problem or e))
    except yaml.YAMLError as e:
        fail(source, 0, str(e))


def mapping(source: str, value: Any, where: str, line: int = 0) -> Located:
    if not isinstance(value, Located):
        fail(source, line, f"{where}: expected a mapping")
    return value


def text(source: str, obj: Located, key: str, *, required: bool = True) -> str:
    value = obj.get(key)
    if value is None and not required:
        return ""
    if not isinstance(value, str) or not value.strip():
        fail(source, obj.line_of(key), f"{key}: expected a non-empty string")
    return value


def flag(source: str, obj: Located, key: str, *, default: bool | None = None) -> bool:
    value = obj.get(key, default)
    if not isinstance(value, bool):
        fail(source, obj.line_of(key), f"{key}: expected true or false")
    return value


def day(source: str, obj: Located, key: str) -> date | None:
    """An optional ISO date (``YYYY-MM-DD``)."""
    value = obj.get(key)
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    if isinstance(value, str):
        try:
            return date.fromisoformat(value)
        except ValueError:
            pass
    fail(source, obj.line_of(key), f"{key}: expected a date YYYY-MM-DD")


def choice(source: str, obj: Located, key: str, allowed: tuple[str, ...]) -> str:
    value = obj.get(key)
    if value not in allowed:
        fail(source, obj.line_of(key), f"{key}: {value!r} is not one of {', '.join(allowed)}")
    return str(value)


def names(source: str, obj: Located, key: str) -> tuple[str, ...]:
    value = obj.get(key)
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        fail(source, obj.line_of(key), f"{key}: expected a list of names")
    return tuple(value)
