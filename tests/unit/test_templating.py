"""The template engine: loading template files, validating payloads, reporting errors.

Templates are data under ``templates/<id>/<version>.yaml``; the payload is a flat JSON
object keyed by field name (group fields nest objects, list fields hold arrays).
"""

from __future__ import annotations

import copy
import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from jsonschema import Draft202012Validator

from broker.errors import TemplateError
from broker.templating import (
    DATA_CATEGORIES,
    FieldError,
    Template,
    TemplateRegistry,
    TemplateValidationError,
    load_registry,
)
from broker.templating.compiler import is_date, is_datetime_tz, is_duration
from broker.templating.conditions import (
    ConditionSyntaxError,
    bind,
    evaluate,
    parse_condition,
    to_schema,
)
from broker.templating.model import FieldSpec, FieldType, Labels, Requirement

pytestmark = pytest.mark.unit

TEMPLATES = Path(__file__).resolve().parents[2] / "templates"
ART29 = "coe-art29-preservation"
MLA = "mla-request"
SECRET = "Zq-SECRET-7731-Müller"  # a distinctive value that must never show in errors


@pytest.fixture(scope="module")
def registry() -> TemplateRegistry:
    return load_registry(TEMPLATES)


@pytest.fixture
def art29(registry: TemplateRegistry) -> Template:
    return registry.get(ART29, "1.0.0")


@pytest.fixture
def mla(registry: TemplateRegistry) -> Template:
    return registry.get(MLA, "1.0.0")


def rules_at(errors: list[FieldError]) -> set[tuple[str, str]]:
    return {(e.path, e.rule) for e in errors}


# --- loading and lookup -------------------------------------------------------------


def test_shipped_templates_load(registry: TemplateRegistry) -> None:
    ids = {(t.id, t.version) for t in registry.templates()}
    assert {(ART29, "1.0.0"), (MLA, "1.0.0")} <= ids
    assert len(registry) == len(ids)


@pytest.mark.parametrize("template_id", [ART29, MLA])
def test_shipped_skeleton_validates(registry: TemplateRegistry, template_id: str) -> None:
    template = registry.latest(template_id)
    skeleton = template.skeleton()
    assert template.check(skeleton) == []
    template.validate(skeleton)
    json.dumps(skeleton)  # plain JSON


@pytest.mark.parametrize("template_id", [ART29, MLA])
def test_compiled_schema_is_draft_2020_12(registry: TemplateRegistry, template_id: str) -> None:
    template = registry.latest(template_id)
    schema = template.json_schema
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    Draft202012Validator.check_schema(schema)
    assert schema["additionalProperties"] is False
    schema["properties"].clear()  # a copy: the template's own schema is untouched
    assert template.json_schema["properties"]


def test_lookup_by_message_type(registry: TemplateRegistry) -> None:
    assert registry.default_for_message_type("preservation").id == ART29
    assert registry.default_for_message_type("mla_request").id == MLA
    assert registry.latest(ART29).version == "1.0.0"


@pytest.mark.parametrize(
    "lookup",
    [
        lambda r: r.get("no-such-template", "1.0.0"),
        lambda r: r.get(ART29, "9.9.9"),
        lambda r: r.latest("no-such-template"),
        lambda r: r.default_for_message_type("no_such_message_type"),
    ],
)
def test_unknown_template_rejected(
    registry: TemplateRegistry, lookup: Callable[[TemplateRegistry], Template]
) -> None:
    with pytest.raises(TemplateError) as info:
        lookup(registry)
    assert info.value.code == "TEMPLATE_UNKNOWN"


def test_metadata_carries_verification_tags(art29: Template, mla: Template) -> None:
    assert {c.verification for c in art29.legal_basis} <= {"V", "R", "U"}
    assert art29.provenance["source_entry"] == "coe_art29_preservation"
    assert mla.provenance["source_entry"] == "unodc_mla_request"
    assert art29.deadlines[0].value == "P60D"
    assert art29.deadlines[0].verification == "V"
    assert "contact_point" in art29.roles.sender
    assert art29.message_types == ("preservation",)
    custodian = art29.definition.field("custodian")
    assert custodian is not None
    assert custodian.verification == "V"
    assert custodian.requirement is Requirement.OPTIONAL  # source condition "known"
    for template in (art29, mla):
        for spec in template.fields:
            assert spec.verification in {"V", "R", "U"}, spec.name


def test_meta_schema_data_categories_match_engine() -> None:
    meta = json.loads((TEMPLATES / "meta-schema.json").read_text())
    assert set(meta["$defs"]["data_category"]["enum"]) == DATA_CATEGORIES


# --- labels -------------------------------------------------------------------------


def test_labels_in_french_and_german(art29: Template) -> None:
    assert art29.title("fr").startswith("Demande de conservation rapide")
    assert art29.title("de").startswith("Ersuchen um umgehende Sicherung")
    assert art29.title("xx") == art29.title("en")  # unknown language: English
    payload = art29.skeleton()
    del payload["reference"]
    (fr,) = art29.check(payload, lang="fr")
    (de,) = art29.check(payload, lang="de")
    assert (fr.label, fr.message) == ("Référence", "Ce champ est obligatoire.")
    assert (de.label, de.message) == ("Aktenzeichen", "Dieses Feld ist erforderlich.")


def test_every_label_has_en_fr_de(art29: Template, mla: Template) -> None:
    for template in (art29, mla):
        specs = list(template.fields)
        for group in template.field_groups.values():
            specs.extend(group.fields)
        for spec in specs:
            assert {"en", "fr", "de"} <= set(spec.label.values), spec.name
        for section in template.sections:
            assert {"en", "fr", "de"} <= set(section.title.values), section.id


# --- one rule at a time -------------------------------------------------------------


def test_missing_required_field(art29: Template) -> None:
    payload = art29.skeleton()
    del payload["summary_of_facts"]
    del payload["requesting_authority"]["person_in_charge"]["email"]
    errors = art29.check(payload)
    assert rules_at(errors) == {
        ("summary_of_facts", "required"),
        ("requesting_authority/person_in_charge/email", "required"),
    }
    labels = {e.path: e.label for e in errors}
    assert labels["summary_of_facts"] == "Brief summary of the facts"
    assert labels["requesting_authority/person_in_charge/email"] == "E-mail"


def test_bad_enum_value(art29: Template) -> None:
    payload = art29.skeleton()
    payload["request_status"] = "urgent_please"
    payload["data_to_preserve"][0]["identifier_type"] = "carrier_pigeon"
    assert rules_at(art29.check(payload)) == {
        ("request_status", "enum"),
        ("data_to_preserve/0/identifier_type", "enum"),
    }


def test_only_allowed_bool_value(art29: Template) -> None:
    """Art. 29(2)(f): the statement of intent to submit an MLA request must be true."""
    payload = art29.skeleton()
    payload["intent_to_submit_mla"] = False
    assert rules_at(art29.check(payload)) == {("intent_to_submit_mla", "enum")}


def test_wrong_type_reported_once(art29: Template) -> None:
    payload = art29.skeleton()
    payload["intent_to_submit_mla"] = "yes"
    payload["request_status"] = 3
    payload["offences"] = {"name": "fraud"}
    payload["confidentiality_requested"] = None
    assert rules_at(art29.check(payload)) == {
        ("intent_to_submit_mla", "type"),
        ("request_status", "type"),
        ("offences", "type"),
        ("confidentiality_requested", "type"),
    }


def test_payload_not_an_object(art29: Template) -> None:
    errors = art29.check(["not", "an", "object"])  # type: ignore[arg-type]
    assert rules_at(errors) == {("", "type")}


@pytest.mark.parametrize("value", ["2026-02-30", "15/01/2026", "2026-1-5", "2026-01-15T10:00:00Z"])
def test_bad_date(art29: Template, value: str) -> None:
    payload = art29.skeleton()
    payload["date"] = value
    assert rules_at(art29.check(payload)) == {("date", "format")}


@pytest.mark.parametrize(
    "value",
    [
        "2026-01-14T22:05:00",  # no UTC offset: useless for IP attribution
        "2026-01-14 22:05:00+01:00",
        "2026-01-14T25:05:00+01:00",
        "2026-01-14T22:05:00+24:00",
        "2026-01-14",
    ],
)
def test_datetime_needs_real_value_with_offset(art29: Template, value: str) -> None:
    payload = art29.skeleton()
    payload["data_to_preserve"][0]["observed_at"] = value
    assert rules_at(art29.check(payload)) == {("data_to_preserve/0/observed_at", "format")}


def test_condition_required_observed_at_for_ip_address(art29: Template) -> None:
    payload = art29.skeleton()
    identifier = payload["data_to_preserve"][0]
    identifier["identifier_type"] = "ip_address_and_port"
    del identifier["observed_at"]
    (error,) = art29.check(payload)
    assert (error.path, error.rule) == ("data_to_preserve/0/observed_at", "condition")
    assert "identifier_type in [ip_address, ip_address_and_port]" in error.message
    identifier["identifier_type"] = "email_address"  # condition off: not required
    assert art29.check(payload) == []


def test_condition_required_previous_reference(art29: Template) -> None:
    payload = art29.skeleton()
    payload["request_status"] = "follow_up"
    assert rules_at(art29.check(payload)) == {("previous_request_reference", "condition")}
    payload["previous_request_reference"] = "REF-2025-0099"
    assert art29.check(payload) == []


def test_condition_on_list_contains(mla: Template) -> None:
    payload = mla.skeleton()
    payload["legal_basis"] = ["untoc", "reciprocity"]
    assert rules_at(mla.check(payload)) == {("reciprocity_assurance", "condition")}
    payload["measures"] = ["witness_statement"]  # no electronic evidence: identifiers optional
    del payload["identifiers"]
    del payload["service_provider"]
    payload["reciprocity_assurance"] = True
    assert mla.check(payload) == []
    payload["measures"] = ["witness_statement", "access_to_stored_data_content"]
    assert rules_at(mla.check(payload)) == {
        ("identifiers", "condition"),
        ("service_provider", "condition"),
    }


def test_unknown_field_rejected(art29: Template) -> None:
    payload = art29.skeleton()
    payload["colour"] = "blue"
    payload["data_to_preserve"][0]["hint"] = "x"
    payload["signature"]["pin"] = "1234"
    errors = art29.check(payload)
    assert rules_at(errors) == {
        ("colour", "additionalProperties"),
        ("data_to_preserve/0/hint", "additionalProperties"),
        ("signature/pin", "additionalProperties"),
    }
    assert {e.label for e in errors} == {"Unknown field"}


def test_string_limits(art29: Template) -> None:
    payload = art29.skeleton()
    payload["reference"] = "R" * 129
    payload["summary_of_facts"] = ""
    payload["data_to_preserve"][0]["value"] = "192.0.2.1\u202e"  # bidi override
    payload["relationship_to_offence"] = "line one\nline two\ttabbed"  # fine in text
    assert rules_at(art29.check(payload)) == {
        ("reference", "maxLength"),
        ("summary_of_facts", "minLength"),
        ("data_to_preserve/0/value", "pattern"),
    }


def test_list_rules(art29: Template) -> None:
    payload = art29.skeleton()
    payload["data_to_preserve"] = []
    payload["data_categories"] = ["traffic_data", "traffic_data"]
    assert rules_at(art29.check(payload)) == {
        ("data_to_preserve", "minItems"),
        ("data_categories", "uniqueItems"),
    }


def test_country_and_language_codes(mla: Template) -> None:
    payload = mla.skeleton()
    payload["requesting_authority"]["country"] = "Germany"
    payload["language"] = "eng"
    assert rules_at(mla.check(payload)) == {
        ("requesting_authority/country", "format"),
        ("language", "format"),
    }


def test_validate_raises_with_errors(art29: Template) -> None:
    payload = art29.skeleton()
    del payload["reference"]
    payload["request_status"] = "bogus"
    with pytest.raises(TemplateValidationError) as info:
        art29.validate(payload, lang="de")
    error = info.value
    assert isinstance(error, TemplateError)
    assert error.code == "TEMPLATE_INVALID"
    assert rules_at(error.errors) == {("reference", "required"), ("request_status", "enum")}
    assert "2 errors: reference: required; request_status: enum" in error.message


# --- nothing submitted leaks into errors ----------------------------------------------


@pytest.mark.parametrize("lang", ["en", "fr", "de"])
def test_errors_never_echo_submitted_values(art29: Template, lang: str) -> None:
    """A payload full of wrong values that are personal data: no error text repeats them."""
    payload = art29.skeleton()
    payload["request_status"] = SECRET
    payload["date"] = SECRET
    payload["reference"] = SECRET * 20
    payload["intent_to_submit_mla"] = SECRET
    payload["data_categories"] = [SECRET]
    payload["data_to_preserve"][0]["observed_at"] = SECRET
    payload["data_to_preserve"][0]["value"] = SECRET + "\x00"
    payload["offences"][0]["death_penalty_possible"] = {"name": SECRET}
    payload["unknown_field"] = SECRET
    with pytest.raises(TemplateValidationError) as info:
        art29.validate(payload, lang=lang)
    assert len(info.value.errors) == 9
    texts = [str(info.value), info.value.message]
    texts += [f"{e.path} {e.rule} {e.label} {e.message}" for e in info.value.errors]
    for text in texts:
        assert "SECRET" not in text
        assert "Müller" not in text


# --- personal-data categories --------------------------------------------------------


def test_data_categories_reflect_present_fields(art29: Template, mla: Template) -> None:
    payload = art29.skeleton()
    assert art29.data_categories(payload) == {"identification", "official_contact", "free_text"}
    assert art29.data_categories({"reference": "R-1"}) == frozenset()
    assert art29.data_categories({"summary_of_facts": "..."}) == {"free_text"}
    assert art29.data_categories({"summary_of_facts": ""}) == frozenset()  # empty: absent
    assert art29.data_categories({"data_to_preserve": [{"identifier_type": "url"}]}) == frozenset()

    persons = mla.skeleton()
    assert "victim" not in mla.data_categories(persons)
    persons["persons"] = [
        {"status": "victim", "is_child": True},
        {"status": "suspect_or_accused", "is_child": False, "natural_person": "..."},
    ]
    found = mla.data_categories(persons)
    assert {"victim", "child", "suspect", "person_identity"} <= found
    assert "other_party" not in found


def test_data_categories_tolerate_malformed_payload(mla: Template) -> None:
    odd: dict[str, Any] = {"persons": "not a list", "contact": ["x"], "zz": {"a": 1}}
    assert mla.data_categories(odd) == frozenset()


# --- broken template files -----------------------------------------------------------


def _art29_data() -> dict[str, Any]:
    loaded = yaml.safe_load((TEMPLATES / ART29 / "1.0.0.yaml").read_text(encoding="utf-8"))
    assert isinstance(loaded, dict)
    return loaded


def _registry_dir(tmp_path: Path, files: dict[str, dict[str, Any] | str]) -> Path:
    """A template directory holding the meta-schema and the given ``<id>/<version>`` files."""
    root = tmp_path / "templates"
    root.mkdir(parents=True)
    shutil.copy(TEMPLATES / "meta-schema.json", root)
    for name, content in files.items():
        target = root / f"{name}.yaml"
        target.parent.mkdir(parents=True, exist_ok=True)
        text = content if isinstance(content, str) else yaml.safe_dump(content, sort_keys=False)
        target.write_text(text, encoding="utf-8")
    return root


def _field(data: dict[str, Any], section: str, name: str) -> dict[str, Any]:
    fields = next(s for s in data["sections"] if s["id"] == section)["fields"]
    found: dict[str, Any] = next(f for f in fields if f["name"] == name)
    return found


_LABELS = {"en": "Unit", "fr": "Unité", "de": "Einheit"}


def _drop_id(data: dict[str, Any]) -> None:
    del data["id"]


def _bad_type(data: dict[str, Any]) -> None:
    _field(data, "header", "reference")["type"] = "strnig"


def _unknown_group(data: dict[str, Any]) -> None:
    _field(data, "case", "offences")["type"] = "list<group:crime>"


def _condition_unknown_field(data: dict[str, Any]) -> None:
    _field(data, "header", "previous_request_reference")["condition"] = "request_state != new"


def _condition_bad_value(data: dict[str, Any]) -> None:
    _field(data, "header", "previous_request_reference")["condition"] = (
        "request_status != brand_new"
    )


def _group_condition_unknown_field(data: dict[str, Any]) -> None:
    identifier = data["field_groups"]["identifier"]["fields"]
    observed = next(f for f in identifier if f["name"] == "observed_at")
    observed["condition"] = "kind == ip_address"


def _missing_label(data: dict[str, Any]) -> None:
    del _field(data, "data", "custodian")["label"]["de"]


def _bad_verification(data: dict[str, Any]) -> None:
    _field(data, "data", "custodian")["verification"] = "verified"


def _duplicate_name(data: dict[str, Any]) -> None:
    data["sections"][1]["fields"].append(copy.deepcopy(_field(data, "header", "date")))


def _conditional_without_condition(data: dict[str, Any]) -> None:
    del _field(data, "header", "previous_request_reference")["condition"]


def _group_cycle(data: dict[str, Any]) -> None:
    data["field_groups"]["contact"]["fields"].append(
        {"name": "unit", "type": "group:authority", "required": False, "label": _LABELS}
    )


def _bad_example(data: dict[str, Any]) -> None:
    _field(data, "header", "date")["example"] = "15.01.2026"


@pytest.mark.parametrize(
    ("mutate", "named"),
    [
        (_drop_id, "'id'"),
        (_bad_type, "reference"),
        (_unknown_group, "offences"),
        (_condition_unknown_field, "previous_request_reference"),
        (_condition_bad_value, "previous_request_reference"),
        (_group_condition_unknown_field, "observed_at"),
        (_missing_label, "custodian"),
        (_bad_verification, "custodian"),
        (_duplicate_name, "date"),
        (_conditional_without_condition, "previous_request_reference"),
        (_group_cycle, "cycle: contact -> authority -> contact"),
        (_bad_example, "date"),
    ],
)
def test_broken_template_file_rejected(
    tmp_path: Path, mutate: Callable[[dict[str, Any]], None], named: str
) -> None:
    data = _art29_data()
    mutate(data)
    root = _registry_dir(tmp_path, {f"{ART29}/1.0.0": data})
    with pytest.raises(TemplateError) as info:
        load_registry(root)
    assert info.value.code == "TEMPLATE_DEFINITION_INVALID"
    assert str(root / ART29 / "1.0.0.yaml") in info.value.message
    assert named in info.value.message


def test_duplicate_yaml_key_rejected(tmp_path: Path) -> None:
    text = (TEMPLATES / ART29 / "1.0.0.yaml").read_text(encoding="utf-8")
    text = text.replace('version: "1.0.0"\n', 'version: "1.0.0"\nversion: "1.0.0"\n', 1)
    root = _registry_dir(tmp_path, {f"{ART29}/1.0.0": text})
    with pytest.raises(TemplateError, match="duplicate key 'version'"):
        load_registry(root)


@pytest.mark.parametrize(("directory", "file"), [("other-id", "1.0.0"), (ART29, "2.0.0")])
def test_file_location_must_match_id_and_version(tmp_path: Path, directory: str, file: str) -> None:
    root = _registry_dir(tmp_path, {f"{directory}/{file}": _art29_data()})
    with pytest.raises(TemplateError) as info:
        load_registry(root)
    assert f"{directory}/{file}.yaml" in info.value.message


def test_empty_or_schema_less_directory_rejected(tmp_path: Path) -> None:
    root = _registry_dir(tmp_path, {})
    with pytest.raises(TemplateError, match="no templates"):
        load_registry(root)
    (root / "meta-schema.json").unlink()
    with pytest.raises(TemplateError, match=r"meta-schema\.json"):
        load_registry(root)


# --- new versions and new templates are data only ------------------------------------


def _new_version(version: str) -> dict[str, Any]:
    data = _art29_data()
    data["version"] = version
    header = next(s for s in data["sections"] if s["id"] == "header")
    header["fields"].append(
        {
            "name": "priority",
            "type": "enum",
            "required": True,
            "allowed_values": ["normal", "high"],
            "verification": "U",
            "label": {"en": "Priority", "fr": "Priorité", "de": "Priorität"},
        }
    )
    return data


def test_new_version_dropped_in_is_loaded(tmp_path: Path) -> None:
    root = _registry_dir(
        tmp_path,
        {
            f"{ART29}/1.0.0": _art29_data(),
            f"{ART29}/1.9.0": _new_version("1.9.0"),
            f"{ART29}/1.10.0": _new_version("1.10.0"),
        },
    )
    reg = load_registry(root)
    latest = reg.latest(ART29)
    assert latest.version == "1.10.0"  # numeric, not lexical, ordering
    assert reg.default_for_message_type("preservation").version == "1.10.0"
    assert [t.version for t in reg.templates()] == ["1.0.0", "1.9.0", "1.10.0"]
    old = reg.get(ART29, "1.0.0").skeleton()
    assert rules_at(latest.check(old)) == {("priority", "required")}
    assert latest.skeleton()["priority"] == "normal"
    assert reg.get(ART29, "1.0.0").check(latest.skeleton()) == [
        FieldError(
            "priority",
            "additionalProperties",
            "Unknown field",
            "Unknown field: not part of this template.",
        )
    ]


def test_second_template_for_a_message_type_needs_explicit_default(tmp_path: Path) -> None:
    other = _art29_data()
    other["id"] = "national-preservation"
    files: dict[str, dict[str, Any] | str] = {
        f"{ART29}/1.0.0": _art29_data(),
        "national-preservation/1.0.0": other,
    }
    with pytest.raises(TemplateError, match="default_for"):
        load_registry(_registry_dir(tmp_path / "a", files))
    other["default_for"] = ["preservation"]
    reg = load_registry(_registry_dir(tmp_path / "b", files))
    assert reg.default_for_message_type("preservation").id == "national-preservation"


# --- the condition language and formats ---------------------------------------------


def _spec(name: str, kind: str, allowed: tuple[Any, ...] = ()) -> FieldSpec:
    return FieldSpec(
        name,
        FieldType.parse(kind),
        Requirement.OPTIONAL,
        Labels({"en": name}),
        allowed_values=allowed,
    )


_SCOPE = {
    "kind": _spec("kind", "enum", ("a", "b", "c")),
    "flag": _spec("flag", "bool"),
    "tags": _spec("tags", "multi_enum", ("x", "y")),
    "note": _spec("note", "text"),
}


@pytest.mark.parametrize(
    "text",
    [
        "kind == a",
        "kind != a",
        "kind in [a, b]",
        "flag",
        "flag == true",
        "not flag",
        "tags contains x",
        "tags contains [x, y]",
        "note",
        "note == 'two words'",
        "(kind == a or kind == b) and not tags contains y",
    ],
)
def test_condition_schema_and_python_agree(text: str) -> None:
    """Each condition means the same compiled to JSON Schema and evaluated in Python."""
    condition = bind(parse_condition(text), _SCOPE.get)
    validator = Draft202012Validator(to_schema(condition))
    scopes: list[dict[str, Any]] = [
        {},
        {"kind": "a"},
        {"kind": "b", "flag": True},
        {"kind": "c", "flag": False, "tags": ["y"]},
        {"tags": ["x"], "note": ""},
        {"tags": [], "note": "two words", "flag": 1},
        {"kind": 1, "flag": "true", "tags": "x"},
    ]
    for scope in scopes:
        assert evaluate(condition, scope) == validator.is_valid(scope), scope


@pytest.mark.parametrize(
    "text",
    [
        "",
        "kind ==",
        "kind == a b",
        "kind in a",
        "(kind == a",
        "missing == a",
        "kind == d",
        "flag == yes",
        "kind contains a",
        "tags == x",
        "kind == 'a",
    ],
)
def test_bad_conditions_rejected(text: str) -> None:
    with pytest.raises(ConditionSyntaxError):
        bind(parse_condition(text), _SCOPE.get)


def test_format_checkers() -> None:
    assert is_datetime_tz("2026-01-14T22:05:00Z")
    assert is_datetime_tz("2026-01-14T22:05:00.123456789-05:30")
    assert not is_datetime_tz("2026-01-14T22:05:00")
    assert not is_datetime_tz("2026-02-29T22:05:00+00:00")  # 2026 is no leap year
    assert is_date("2024-02-29")
    assert not is_date("2026-13-01")
    assert is_duration("P60D")
    assert is_duration("PT24H")
    assert is_duration("P1Y2M3DT4H5M6.5S")
    assert not is_duration("P")
    assert not is_duration("PT")
    assert not is_duration("60 days")
