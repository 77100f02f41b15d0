"""Read the template directory into a :class:`TemplateRegistry`.

Layout: ``<root>/meta-schema.json`` and ``<root>/<template-id>/<version>.yaml``. The id
and version inside each file must match its directory and file name. Adding a template
or a version is dropping a file here; no code changes.

:func:`load_registry` is the only function that touches the filesystem; everything it
calls (:func:`parse_template`) is pure.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError

from broker.errors import TemplateError
from broker.templating.compiler import FORMAT_CHECKER
from broker.templating.definition import build_definition, check_meta, definition_error
from broker.templating.model import TEMPLATE_DEFINITION_INVALID
from broker.templating.registry import TemplateRegistry
from broker.templating.template import Template
from broker.templating.validate import summarise

META_SCHEMA_FILE = "meta-schema.json"
TEMPLATE_SUFFIX = ".yaml"
MAX_FILE_BYTES = 1 << 20


# libyaml's parser is ten times faster than the pure-Python one (the template directory
# loads at every node start); the constructor, and so the safety and the duplicate-key
# check below, is the same Python SafeConstructor either way.
try:
    from yaml import CSafeLoader as _SafeBase
except ImportError:  # pragma: no cover - PyYAML built without libyaml
    from yaml import SafeLoader as _SafeBase  # type: ignore[assignment]


class _StrictLoader(_SafeBase):
    """YAML safe loader that refuses duplicate keys (PyYAML keeps the last silently)."""


def _construct_mapping(loader: _StrictLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    loader.flatten_mapping(node)
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=True)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r}", key_node.start_mark
            )
        seen.add(key)
    return loader.construct_mapping(node, deep=True)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def meta_validator(
    meta_schema: Mapping[str, Any], source: str = META_SCHEMA_FILE
) -> Draft202012Validator:
    """A validator for template files from the meta-schema document.

    Raises:
        TemplateError: the meta-schema itself is not a valid JSON Schema.
    """
    try:
        Draft202012Validator.check_schema(meta_schema)
    except SchemaError as e:
        raise definition_error(source, "meta-schema", e.message) from e
    return Draft202012Validator(meta_schema, format_checker=FORMAT_CHECKER)


def parse_template(
    data: Any,
    source: str,
    meta: Draft202012Validator,
    *,
    expected_id: str | None = None,
    expected_version: str | None = None,
) -> Template:
    """Check and compile one template from its parsed file content (pure).

    Args:
        data: the parsed YAML document.
        source: the file name, used in every error message.
        meta: validator of the meta-schema.
        expected_id: the directory name the file sits in, if loaded from disk.
        expected_version: the file name without suffix, if loaded from disk.

    Raises:
        TemplateError: code ``TEMPLATE_DEFINITION_INVALID``, naming ``source`` and the field.
    """
    check_meta(data, meta, source)
    if expected_id is not None and data["id"] != expected_id:
        raise definition_error(source, "id", f"{data['id']!r} differs from its directory")
    if expected_version is not None and data["version"] != expected_version:
        raise definition_error(source, "version", f"{data['version']!r} differs from the file name")
    template = Template(build_definition(data, source))
    errors = template.check(template.skeleton())
    if errors:
        raise definition_error(source, "example values", f"skeleton fails: {summarise(errors)}")
    return template


def _read(path: Path) -> str:
    try:
        if path.stat().st_size > MAX_FILE_BYTES:
            raise definition_error(str(path), "file", f"larger than {MAX_FILE_BYTES} bytes")
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise definition_error(str(path), "file", f"cannot read: {e}") from e


def _read_yaml(path: Path) -> Any:
    try:
        return yaml.load(_read(path), Loader=_StrictLoader)  # noqa: S506 - safe loader subclass
    except yaml.YAMLError as e:
        raise definition_error(str(path), "YAML", str(e).replace("\n", " ")) from e


def load_registry(path: Path) -> TemplateRegistry:
    """Load and check every ``<id>/<version>.yaml`` under ``path``.

    Directories and files whose names start with ``.`` or ``_`` are skipped.

    Raises:
        TemplateError: code ``TEMPLATE_DEFINITION_INVALID`` for a missing meta-schema,
            an empty directory, or the first broken file (naming it and the field).
    """
    meta_path = path / META_SCHEMA_FILE
    try:
        meta_doc = json.loads(_read(meta_path))
    except json.JSONDecodeError as e:
        raise definition_error(str(meta_path), "JSON", str(e)) from e
    meta = meta_validator(meta_doc, str(meta_path))
    templates = []
    for directory in sorted(p for p in path.iterdir() if p.is_dir() and p.name[0] not in "._"):
        for file in sorted(directory.glob(f"*{TEMPLATE_SUFFIX}")):
            if file.name[0] in "._":
                continue
            templates.append(
                parse_template(
                    _read_yaml(file),
                    str(file),
                    meta,
                    expected_id=directory.name,
                    expected_version=file.name.removesuffix(TEMPLATE_SUFFIX),
                )
            )
    if not templates:
        raise TemplateError(f"{path}: no templates found", code=TEMPLATE_DEFINITION_INVALID)
    return TemplateRegistry(templates)
