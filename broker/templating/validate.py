"""Turn JSON Schema failures into :class:`FieldError` values people can act on.

Each error names the field path and the rule, carries the field's label in the
requested language and a short message. Submitted values are never echoed: values may
be personal data, and errors travel further (logs, peers, audit) than the payload.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any

from jsonschema import Draft202012Validator, ValidationError

from broker.templating.model import (
    DEFAULT_LANGUAGE,
    FieldError,
    FieldSpec,
    FieldType,
    TemplateDefinition,
)

MAX_KEY_CHARS = 64
MAX_LISTED_VALUES = 12
MAX_SUMMARY_ERRORS = 20

_MESSAGES: dict[str, dict[str, str]] = {
    "required": {
        "en": "This field is required.",
        "fr": "Ce champ est obligatoire.",
        "de": "Dieses Feld ist erforderlich.",
    },
    "condition": {
        "en": "This field is required when {condition}.",
        "fr": "Ce champ est obligatoire lorsque {condition}.",
        "de": "Dieses Feld ist erforderlich, wenn {condition}.",
    },
    "type": {
        "en": "Wrong type: expected {expected}.",
        "fr": "Type incorrect : {expected} attendu.",
        "de": "Falscher Typ: {expected} erwartet.",
    },
    "enum": {
        "en": "Not one of the allowed values ({allowed}).",
        "fr": "Ne fait pas partie des valeurs autorisées ({allowed}).",
        "de": "Kein zulässiger Wert ({allowed}).",
    },
    "format": {
        "en": "Not a valid {format}.",
        "fr": "Format non valide : {format}.",
        "de": "Ungültiges Format: {format}.",
    },
    "pattern": {
        "en": "Contains control or bidirectional-formatting characters.",
        "fr": "Contient des caractères de contrôle ou de mise en forme bidirectionnelle.",
        "de": "Enthält Steuerzeichen oder bidirektionale Formatierungszeichen.",
    },
    "minLength": {
        "en": "Must not be empty.",
        "fr": "Ne doit pas être vide.",
        "de": "Darf nicht leer sein.",
    },
    "maxLength": {
        "en": "Longer than {limit} characters.",
        "fr": "Dépasse {limit} caractères.",
        "de": "Länger als {limit} Zeichen.",
    },
    "minItems": {
        "en": "At least {limit} entry required.",
        "fr": "Au moins {limit} entrée requise.",
        "de": "Mindestens {limit} Eintrag erforderlich.",
    },
    "maxItems": {
        "en": "At most {limit} entries allowed.",
        "fr": "Au plus {limit} entrées autorisées.",
        "de": "Höchstens {limit} Einträge zulässig.",
    },
    "uniqueItems": {
        "en": "Entries must not repeat.",
        "fr": "Les entrées ne doivent pas se répéter.",
        "de": "Einträge dürfen sich nicht wiederholen.",
    },
    "additionalProperties": {
        "en": "Unknown field: not part of this template.",
        "fr": "Champ inconnu : ne fait pas partie de ce modèle.",
        "de": "Unbekanntes Feld: nicht Teil dieser Vorlage.",
    },
    "invalid": {
        "en": "Invalid value (rule {rule}).",
        "fr": "Valeur non valide (règle {rule}).",
        "de": "Ungültiger Wert (Regel {rule}).",
    },
}
_UNKNOWN_LABEL = {"en": "Unknown field", "fr": "Champ inconnu", "de": "Unbekanntes Feld"}
_TYPE_NAMES = {
    "string": {"en": "text", "fr": "texte", "de": "Text"},
    "array": {"en": "a list", "fr": "une liste", "de": "eine Liste"},
    "object": {"en": "an object", "fr": "un objet", "de": "ein Objekt"},
    "boolean": {"en": "true or false", "fr": "vrai ou faux", "de": "wahr oder falsch"},
}
_FORMAT_NAMES = {
    "date": {"en": "date (YYYY-MM-DD)", "fr": "date (AAAA-MM-JJ)", "de": "Datum (JJJJ-MM-TT)"},
    "date-time": {
        "en": "date and time with UTC offset (YYYY-MM-DDThh:mm:ss+hh:mm)",
        "fr": "date et heure avec décalage UTC (AAAA-MM-JJThh:mm:ss+hh:mm)",
        "de": "Datum und Uhrzeit mit UTC-Versatz (JJJJ-MM-TTThh:mm:ss+hh:mm)",
    },
    "duration": {
        "en": "ISO 8601 duration (e.g. P60D)",
        "fr": "durée ISO 8601 (p. ex. P60D)",
        "de": "ISO-8601-Dauer (z. B. P60D)",
    },
    "iso3166-1-alpha-2": {
        "en": "ISO 3166-1 alpha-2 country code",
        "fr": "code pays ISO 3166-1 alpha-2",
        "de": "Ländercode nach ISO 3166-1 Alpha-2",
    },
    "sha256-hex": {
        "en": "SHA-256 digest (64 lowercase hexadecimal digits)",
        "fr": "empreinte SHA-256 (64 chiffres hexadécimaux minuscules)",
        "de": "SHA-256-Prüfsumme (64 hexadezimale Kleinbuchstaben/Ziffern)",
    },
    "iso639-1": {
        "en": "ISO 639-1 language code",
        "fr": "code de langue ISO 639-1",
        "de": "Sprachcode nach ISO 639-1",
    },
}
_RULES = {"const": "enum"}
_UNSAFE_KEY_CHARS = re.compile(r"[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")

Part = str | int


def _pick(table: Mapping[str, str], lang: str) -> str:
    return table.get(lang) or table[DEFAULT_LANGUAGE]


def format_path(parts: tuple[Part, ...]) -> str:
    """``("data_to_preserve", 0, "observed_at")`` -> ``data_to_preserve/0/observed_at``.

    Keys are JSON-Pointer escaped; keys from the payload are stripped of control
    characters and cut to a bounded length (they are caller-supplied text).
    """
    out = []
    for part in parts:
        if isinstance(part, int):
            out.append(str(part))
            continue
        text = _UNSAFE_KEY_CHARS.sub("?", part)[:MAX_KEY_CHARS]
        out.append(text.replace("~", "~0").replace("/", "~1"))
    return "/".join(out)


def spec_at(definition: TemplateDefinition, parts: tuple[Part, ...]) -> FieldSpec | None:
    """The field a payload path points into (list indexes skipped), or ``None``."""
    fields = definition.fields
    spec: FieldSpec | None = None
    ftype: FieldType | None = None
    for part in parts:
        if isinstance(part, int):
            if ftype is None or ftype.kind != "list" or ftype.item is None:
                return None
            ftype = ftype.item
            continue
        if ftype is not None:
            if ftype.group is None or ftype.group not in definition.field_groups:
                return None
            fields = definition.field_groups[ftype.group].fields
        spec = next((f for f in fields if f.name == part), None)
        if spec is None:
            return None
        ftype = spec.type
    return spec


def _in_then_branch(error: ValidationError) -> bool:
    """Whether a ``required`` failure comes from a compiled ``allOf[i].then`` rule."""
    tail = list(error.absolute_schema_path)[-4:]
    return len(tail) == 4 and tail[0] == "allOf" and isinstance(tail[1], int) and tail[2] == "then"


def _explain(error: ValidationError) -> Iterator[tuple[tuple[Part, ...], str, dict[str, Any]]]:
    """(path, rule, message parameters) for one jsonschema error, without its values."""
    path: tuple[Part, ...] = tuple(error.absolute_path)
    keyword = str(error.validator)
    instance = error.instance
    value: Any = error.validator_value
    if keyword == "required" and isinstance(instance, Mapping):
        rule = "condition" if _in_then_branch(error) else "required"
        for name in value:
            if name not in instance:
                yield (*path, name), rule, {}
    elif keyword == "additionalProperties" and isinstance(instance, Mapping):
        known = error.schema.get("properties", {}) if isinstance(error.schema, Mapping) else {}
        for key in instance:
            if key not in known:
                yield (*path, str(key)), keyword, {}
    elif keyword == "type":
        yield path, keyword, {"expected": value}
    elif keyword in ("enum", "const"):
        allowed = value if keyword == "enum" else [value]
        yield path, _RULES.get(keyword, keyword), {"allowed": allowed}
    elif keyword == "format":
        yield path, keyword, {"format": value}
    else:
        yield path, keyword, {"limit": value}


def _message(rule: str, params: dict[str, Any], spec: FieldSpec | None, lang: str) -> str:
    if rule == "condition":
        params = {"condition": spec.condition_text if spec else "?"}
    elif rule == "type":
        expected = params["expected"]
        names = [expected] if isinstance(expected, str) else list(expected)
        params = {"expected": " / ".join(_pick(_TYPE_NAMES.get(n, {"en": n}), lang) for n in names)}
    elif rule == "enum":
        allowed = [_render(v) for v in params["allowed"]]
        if len(allowed) > MAX_LISTED_VALUES:
            allowed = [*allowed[:MAX_LISTED_VALUES], "…"]
        params = {"allowed": ", ".join(allowed)}
    elif rule == "format":
        fmt = str(params["format"])
        params = {"format": _pick(_FORMAT_NAMES.get(fmt, {"en": fmt}), lang)}
    template = _MESSAGES.get(rule)
    if template is None:
        return _pick(_MESSAGES["invalid"], lang).format(rule=rule)
    return _pick(template, lang).format(**params)


def _render(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def collect_errors(
    validator: Draft202012Validator,
    definition: TemplateDefinition,
    payload: Any,
    lang: str = DEFAULT_LANGUAGE,
) -> list[FieldError]:
    """Every failed rule of ``payload``, one error per (path, rule), sorted by path.

    Where a value has the wrong type, the other rules on that same value are dropped
    (they only restate the type error).
    """
    found: dict[tuple[str, str], FieldError] = {}
    for error in validator.iter_errors(payload):
        for parts, rule, params in _explain(error):
            path = format_path(parts)
            if (path, rule) in found:
                continue
            spec = spec_at(definition, parts)
            if rule == "additionalProperties" or (spec is None and parts):
                label = _pick(_UNKNOWN_LABEL, lang)
            else:
                label = spec.label.get(lang) if spec else definition.title.get(lang)
            found[(path, rule)] = FieldError(path, rule, label, _message(rule, params, spec, lang))
    typed = {path for path, rule in found if rule == "type"}
    kept = [e for (path, rule), e in found.items() if rule == "type" or path not in typed]
    return sorted(kept, key=lambda e: (e.path, e.rule))


def summarise(errors: list[FieldError]) -> str:
    """``N errors: <path>: <rule>; ...`` (paths and rules only, never values)."""
    count = len(errors)
    head = f"{count} error{'s' if count != 1 else ''}: "
    listed = [f"{e.path or '(payload)'}: {e.rule}" for e in errors[:MAX_SUMMARY_ERRORS]]
    if count > MAX_SUMMARY_ERRORS:
        listed.append(f"... and {count - MAX_SUMMARY_ERRORS} more")
    return head + "; ".join(listed)
