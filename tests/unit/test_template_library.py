"""The standard template library: every instrument's form loads, validates and says its law.

Covers every template shipped in templates/: its example payload validates, every label
exists in en/fr/de, verification tags match the domain sources (R/U never become V),
roles and deadlines are data, key conditions switch fields on, and five kinds of invalid
payload are rejected with the exact field path and rule. A mutation test drops each
required field in turn.
"""

from __future__ import annotations

import copy
import functools
import json
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from jsonschema import Draft202012Validator

from broker.errors import TemplateError
from broker.templating import Template, TemplateRegistry, load_registry
from broker.templating.compiler import DEFAULT_MAX_LENGTH, is_duration
from broker.templating.model import LANGUAGES, FieldSpec, Requirement
from broker.trust import ROLES

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
TEMPLATES = ROOT / "templates"
DOMAIN = ROOT.parent / "shared" / "domain" / "templates.yaml"

# The forms issue 4 asks for, by template id, with the message type each one serves.
EXPECTED: dict[str, str] = {
    "coe-art29-preservation": "preservation",
    "coe-art30-traffic-disclosure": "traffic_disclosure",
    "coe-art31-mla-stored-data": "mla_request",
    "sap-art6-domain-registration": "domain_registration_request",
    "sap-art7-subscriber-order": "subscriber_information_order",
    "sap-art8-production-order": "production_order_request",
    "sap-art9-emergency-disclosure": "emergency_disclosure",
    "sap-art10-emergency-mla": "emergency_mla_request",
    "eio-annex-a": "eio",
    "eio-annex-b": "eio_acknowledgement",
    "eu-epoc-annex-i": "epoc",
    "eu-epoc-pr-annex-ii": "epoc_pr",
    "eu-annex-iii-impossibility": "epoc_impossibility",
    "eu-annex-v-production-confirmation": "epoc_pr_confirmation",
    "eu-annex-vi-preservation-extension": "epoc_pr_extension",
    "mla-request": "mla_request",
    "exchange-acknowledgement": "acknowledgement",
    "exchange-additional-information-request": "additional_information_request",
    "exchange-additional-information": "additional_information",
    "exchange-execution-response": "execution_response",
    "exchange-refusal": "refusal",
    "exchange-withdrawal": "withdrawal",
}
IDS = sorted(EXPECTED)
TEMPLATE_ROLES = ROLES - {"auditor"} | {"service_provider"}

# Legal deadlines as data: (template, deadline name) -> (ISO 8601 value, kind).
DEADLINES: dict[tuple[str, str], tuple[str, str]] = {
    ("coe-art29-preservation", "minimum_preservation"): ("P60D", "minimum"),
    ("eu-epoc-annex-i", "production_no_notification"): ("P10D", "maximum"),
    ("eu-epoc-annex-i", "production_with_notification"): ("P10D", ""),
    ("eu-epoc-annex-i", "production_emergency"): ("PT8H", "maximum"),
    ("eu-epoc-annex-i", "enforcing_authority_assessment"): ("P10D", "maximum"),
    ("eu-epoc-annex-i", "enforcing_authority_assessment_emergency"): ("PT96H", "maximum"),
    ("eu-epoc-annex-i", "emergency_validation"): ("PT48H", "maximum"),
    ("eu-epoc-pr-annex-ii", "preservation"): ("P60D", ""),
    ("eu-epoc-pr-annex-ii", "extension"): ("P30D", ""),
    ("eu-annex-vi-preservation-extension", "extension"): ("P30D", ""),
    ("eu-annex-iii-impossibility", "reasoned_objection_third_country"): ("P10D", "maximum"),
    ("eio-annex-a", "acknowledge_receipt"): ("P7D", "maximum"),
    ("eio-annex-a", "recognition_decision"): ("P30D", "maximum"),
    ("eio-annex-a", "recognition_extension"): ("P30D", "maximum"),
    ("eio-annex-a", "execution_after_decision"): ("P90D", "maximum"),
    ("eio-annex-a", "provisional_measure_decision"): ("PT24H", "maximum"),
    ("eio-annex-b", "send_within"): ("P7D", "maximum"),
    ("sap-art7-subscriber-order", "provider_response_limit"): ("P30D", "minimum"),
    ("sap-art8-production-order", "serve_provider"): ("P45D", "maximum"),
    ("sap-art8-production-order", "return_subscriber_information"): ("P20D", "maximum"),
    ("sap-art8-production-order", "return_traffic_data"): ("P45D", "maximum"),
}


@pytest.fixture(scope="module")
def registry() -> TemplateRegistry:
    return load_registry(TEMPLATES)


def rules_at(template: Template, payload: Any) -> set[tuple[str, str]]:
    return {(e.path, e.rule) for e in template.check(payload)}


# --- walking a payload along its template ------------------------------------------------

Path_ = tuple[str | int, ...]


def walk(
    template: Template, fields: tuple[FieldSpec, ...], obj: Any, path: Path_ = ()
) -> Iterator[tuple[Path_, FieldSpec]]:
    """Every (path, field) present in ``obj``, depth first, list items included."""
    for spec in fields:
        if not isinstance(obj, dict) or spec.name not in obj:
            continue
        here = (*path, spec.name)
        yield here, spec
        value, ftype = obj[spec.name], spec.type
        if ftype.kind == "list" and ftype.item is not None and ftype.item.group:
            group = template.field_groups[ftype.item.group]
            for i, item in enumerate(value):
                yield from walk(template, group.fields, item, (*here, i))
        elif ftype.group:
            yield from walk(template, template.field_groups[ftype.group].fields, value, here)


def find(template: Template, payload: Any, test: Callable[[FieldSpec], bool]) -> Path_:
    found = next((p for p, spec in walk(template, template.fields, payload) if test(spec)), None)
    assert found is not None, f"{template.id}: no such field in the skeleton"
    return found


def set_at(payload: Any, path: Path_, value: Any) -> None:
    for part in path[:-1]:
        payload = payload[part]
    payload[path[-1]] = value


def text_path(path: Path_) -> str:
    return "/".join(str(p) for p in path)


# --- the library is complete -----------------------------------------------------------


def test_every_form_of_the_issue_has_a_template(registry: TemplateRegistry) -> None:
    assert {t.id for t in registry.templates()} == set(EXPECTED)
    for template_id, message_type in EXPECTED.items():
        assert message_type in registry.latest(template_id).message_types


def test_exactly_one_default_template_per_message_type(registry: TemplateRegistry) -> None:
    defaults = {m: registry.default_for_message_type(m).id for m in registry.message_types()}
    assert defaults == {m: t for t, m in EXPECTED.items() if t != "coe-art31-mla-stored-data"}
    assert defaults["preservation"] == "coe-art29-preservation"
    assert defaults["mla_request"] == "mla-request"


def test_a_non_default_template_is_reachable_by_id(registry: TemplateRegistry) -> None:
    art31 = registry.get("coe-art31-mla-stored-data", "1.0.0")
    assert art31.message_types == ("mla_request",)
    assert art31.check(art31.skeleton()) == []


# --- each template -----------------------------------------------------------------------


@pytest.mark.parametrize("template_id", IDS)
def test_skeleton_validates(registry: TemplateRegistry, template_id: str) -> None:
    template = registry.latest(template_id)
    skeleton = template.skeleton()
    assert template.check(skeleton) == []
    assert json.loads(json.dumps(skeleton)) == skeleton


@pytest.mark.parametrize("template_id", IDS)
def test_compiled_schema_is_valid_2020_12(registry: TemplateRegistry, template_id: str) -> None:
    """The loader skips this self-check for speed; every shipped template is checked here."""
    Draft202012Validator.check_schema(registry.latest(template_id).json_schema)


@pytest.mark.parametrize("template_id", IDS)
def test_every_label_in_english_french_german(registry: TemplateRegistry, template_id: str) -> None:
    template = registry.latest(template_id)
    labelled = [("title", template.definition.title)]
    labelled += [(f"section {s.id}", s.title) for s in template.sections]
    labelled += [(f"field {f.name}", f.label) for f in template.fields]
    for name, group in template.field_groups.items():
        labelled.append((f"group {name}", group.label))
        labelled += [(f"group {name} field {f.name}", f.label) for f in group.fields]
    for where, labels in labelled:
        for lang in LANGUAGES:
            assert labels.values.get(lang, "").strip(), (
                f"{template_id}: {where} has no {lang} label"
            )
    for spec in template.fields:  # French and German are translated, not copied
        if len(spec.label.get("en")) > 12:
            assert spec.label.get("fr") != spec.label.get("en"), f"{template_id}: {spec.name}"
            assert spec.label.get("de") != spec.label.get("en"), f"{template_id}: {spec.name}"


@pytest.mark.parametrize("template_id", IDS)
def test_legal_basis_provenance_and_roles(registry: TemplateRegistry, template_id: str) -> None:
    template = registry.latest(template_id)
    assert template.legal_basis
    assert all(c.verification in {"V", "R", "U"} and c.citation for c in template.legal_basis)
    assert template.provenance["source_file"].startswith("shared/domain/")
    assert template.provenance["verification"]
    assert template.roles.sender and template.roles.recipient
    assert set(template.roles.sender) | set(template.roles.recipient) <= TEMPLATE_ROLES
    for spec in template.fields:
        assert spec.verification in {"V", "R", "U"}, f"{template_id}: {spec.name}"


@functools.cache
def _domain_file() -> dict[str, dict[str, Any]]:
    data = yaml.load(DOMAIN.read_text(encoding="utf-8"), Loader=yaml.CSafeLoader)
    return {entry["id"]: entry for entry in data["templates"]}


def _domain_entries() -> dict[str, dict[str, Any]]:
    if not DOMAIN.exists():
        pytest.skip(f"domain sources not beside the repository ({DOMAIN})")
    return _domain_file()


@pytest.mark.parametrize("template_id", IDS)
def test_verification_tags_carried_from_the_domain_file(
    registry: TemplateRegistry, template_id: str
) -> None:
    """A field keeps the tag its source gives it: R and U are never shown as V."""
    template = registry.latest(template_id)
    if template.provenance["source_file"] != "shared/domain/templates.yaml":
        assert "U" in template.provenance["verification"]  # the exchange's own messages
        return
    entries = _domain_entries()
    entry = entries[template.provenance["source_entry"]]
    assert template.provenance["verification"] == str(entry["verification"])
    sections = list(entry["sections"])
    if "extends" in entry:  # e.g. SAP Art. 10 = the general MLA request + an emergency part
        sections += entries[entry["extends"]]["sections"]
    source_tags: dict[str, set[str]] = {}
    for section in sections:
        for field in section["fields"]:
            if "verification" in field:
                source_tags.setdefault(field["name"], set()).add(field["verification"])
    checked = 0
    for spec in template.fields:
        if spec.name in source_tags:
            checked += 1
            assert spec.verification in source_tags[spec.name], f"{template_id}: {spec.name}"
    assert checked >= len(template.fields) // 2  # most fields keep their source name


@pytest.mark.parametrize("template_id", IDS)
def test_deadlines_are_data(registry: TemplateRegistry, template_id: str) -> None:
    template = registry.latest(template_id)
    found = {d.name: (d.value, d.kind) for d in template.deadlines}
    expected = {name: v for (tid, name), v in DEADLINES.items() if tid == template_id}
    assert found == expected
    for deadline in template.deadlines:
        assert is_duration(deadline.value)
        assert deadline.basis and deadline.verification in {"V", "R", "U"}


# --- key conditions --------------------------------------------------------------------


def _names(deadlines: tuple[Any, ...]) -> set[str]:
    return {d.name for d in deadlines}


def test_epoc_emergency_starts_the_8_hour_deadline(registry: TemplateRegistry) -> None:
    epoc = registry.latest("eu-epoc-annex-i")
    payload = epoc.skeleton()
    assert _names(epoc.deadlines_for(payload)) == {"production_no_notification"}
    payload["deadline"] = "within_8_hours_emergency"
    assert rules_at(epoc, payload) == {("emergency_ground", "condition")}
    payload["emergency_ground"] = "imminent_threat_to_life_physical_integrity_or_safety"
    assert epoc.check(payload) == []
    (emergency,) = epoc.deadlines_for(payload)
    assert (emergency.name, emergency.value, emergency.kind) == (
        "production_emergency",
        "PT8H",
        "maximum",
    )
    payload["enforcing_authority_notified"] = True
    payload["enforcing_authority"] = copy.deepcopy(payload["issuing_authority"])
    payload["emergency_without_prior_validation"] = True
    assert _names(epoc.deadlines_for(payload)) == {
        "production_emergency",
        "enforcing_authority_assessment_emergency",
        "emergency_validation",
    }
    payload["deadline"] = "end_of_10_days_with_notification"
    del payload["emergency_ground"]
    assert _names(epoc.deadlines_for(payload)) == {
        "production_with_notification",
        "enforcing_authority_assessment",
        "emergency_validation",
    }


def test_epoc_traffic_data_needs_items_and_threshold(registry: TemplateRegistry) -> None:
    epoc = registry.latest("eu-epoc-annex-i")
    payload = epoc.skeleton()
    payload["data_category"] = ["subscriber_data", "traffic_data"]
    assert rules_at(epoc, payload) == {
        ("traffic_data_items", "condition"),
        ("traffic_content_threshold", "condition"),
    }
    payload["traffic_data_items"] = ["source_ip", "ports"]
    payload["traffic_content_threshold"] = "max_custodial_min_3_years"
    assert epoc.check(payload) == []


def test_preservation_deadlines(registry: TemplateRegistry) -> None:
    art29 = registry.latest("coe-art29-preservation")
    (minimum,) = art29.deadlines_for(art29.skeleton())
    assert (minimum.value, minimum.kind, minimum.verification) == ("P60D", "minimum", "V")
    epoc_pr = registry.latest("eu-epoc-pr-annex-ii")
    preservation, extension = epoc_pr.deadlines_for(epoc_pr.skeleton())
    assert (preservation.value, extension.value) == ("P60D", "P30D")
    assert (extension.extends, extension.starts) == ("preservation", "expiry")


def test_eio_deadlines_and_measure_conditions(registry: TemplateRegistry) -> None:
    eio = registry.latest("eio-annex-a")
    payload = eio.skeleton()
    assert _names(eio.deadlines_for(payload)) == {
        "acknowledge_receipt",
        "recognition_decision",
        "recognition_extension",
        "execution_after_decision",
    }
    payload["measure_types"] = [
        "interception_of_telecommunications",
        "provisional_measures_to_prevent_destruction_or_transfer",
    ]
    assert rules_at(eio, payload) == {
        ("h7_interception", "condition"),
        ("h3_provisional_measure", "condition"),
    }
    assert "provisional_measure_decision" in _names(eio.deadlines_for(payload))
    execution = next(d for d in eio.deadlines if d.name == "execution_after_decision")
    assert execution.starts == "recognition_decision"


def _set(**values: Any) -> Callable[[dict[str, Any]], None]:
    def mutate(payload: dict[str, Any]) -> None:
        payload.update(copy.deepcopy(values))

    return mutate


def _nested(path: Path_, value: Any) -> Callable[[dict[str, Any]], None]:
    return lambda payload: set_at(payload, path, value)


_AUTHORITY = {
    "country": "FR",
    "organisation": "Parquet de Paris",
    "authority_type": "public_prosecutor",
    "person_in_charge": {
        "name": "N. Example",
        "telephone": "+33 1 00 00 00 00",
        "email": "x@example.fr",
        "time_zone": "Europe/Paris",
    },
}

CONDITIONS: list[tuple[str, Callable[[dict[str, Any]], None], set[tuple[str, str]]]] = [
    (
        "coe-art29-preservation",
        _set(request_status="extension_of_previous_preservation"),
        {("previous_request_reference", "condition")},
    ),
    (
        "coe-art30-traffic-disclosure",
        _set(withheld_reason="political_offence"),
        {("withheld_explanation", "condition")},
    ),
    (
        "coe-art31-mla-stored-data",
        _set(request_status="follow_up_to_previous_preservation_request"),
        {
            ("previous_preservation_date", "condition"),
            ("previous_preservation_ticket_reference", "condition"),
        },
    ),
    (
        "sap-art6-domain-registration",
        _set(data_elements_sought=["other"]),
        {("other_data_elements", "condition")},
    ),
    (
        "sap-art7-subscriber-order",
        _set(preservation_already_sought=True),
        {("preservation_date_and_reference", "condition")},
    ),
    (
        "sap-art8-production-order",
        _set(preservation_already_sought=True),
        {("preservation_date_and_reference", "condition")},
    ),
    (
        "sap-art10-emergency-mla",
        _set(transmitted_via="interpol"),
        {("copy_sent_to_central_authority", "condition")},
    ),
    ("eio-annex-a", _set(supplements_earlier_eio=True), {("earlier_eio_details", "condition")}),
    (
        "eio-annex-a",
        _set(urgency_reasons=["other"], requested_time_limit="2026-12-01"),
        {("urgency_other", "condition"), ("time_limit_reason", "condition")},
    ),
    ("eio-annex-b", _set(transferee_authority=_AUTHORITY), {("date_of_transmission", "condition")}),
    (
        "eu-epoc-pr-annex-ii",
        _set(validating_authority=_AUTHORITY),
        {("validation_signature", "condition")},
    ),
    (
        "eu-annex-iii-impossibility",
        _nested(("non_execution_reasons", 0, "reasons"), ["other"]),
        {("non_execution_reasons/0/explanation", "condition")},
    ),
    (
        "eu-annex-iii-impossibility",
        lambda p: p["preservation_status"][0].pop("preserved_until"),
        {("preservation_status/0/preserved_until", "condition")},
    ),
    (
        "exchange-acknowledgement",
        _set(acknowledgement_status="forwarded_to_competent_authority"),
        {("competent_authority", "condition"), ("date_forwarded", "condition")},
    ),
    (
        "exchange-acknowledgement",
        _set(confidentiality_cannot_be_kept=True),
        {("confidentiality_explanation", "condition")},
    ),
    (
        "exchange-execution-response",
        _set(execution_status="partially_executed"),
        {("not_executed_part", "condition")},
    ),
    (
        "exchange-execution-response",
        _set(use_conditions=["retention_limit", "other"]),
        {("retention_until", "condition"), ("use_conditions_details", "condition")},
    ),
    ("exchange-refusal", _set(decision="postponed"), {("postponed_until", "condition")}),
    (
        "exchange-refusal",
        _set(decision="partially_refused"),
        {("refused_identifiers", "condition")},
    ),
    (
        "exchange-withdrawal",
        _set(withdrawal_scope="part_of_request", reason="other"),
        {("withdrawn_identifiers", "condition"), ("reason_details", "condition")},
    ),
    (
        "exchange-withdrawal",
        _set(reason="request_superseded"),
        {("superseding_request_reference", "condition")},
    ),
]


@pytest.mark.parametrize(("template_id", "mutate", "expected"), CONDITIONS)
def test_condition_switches_a_field_on(
    registry: TemplateRegistry,
    template_id: str,
    mutate: Callable[[dict[str, Any]], None],
    expected: set[tuple[str, str]],
) -> None:
    template = registry.latest(template_id)
    payload = template.skeleton()
    mutate(payload)
    assert rules_at(template, payload) == expected


def test_conditions_table_covers_every_template_with_top_level_conditions(
    registry: TemplateRegistry,
) -> None:
    covered = {template_id for template_id, _, _ in CONDITIONS} | {"eu-epoc-annex-i", "mla-request"}
    for template in registry.templates():
        if any(f.requirement is Requirement.CONDITIONAL for f in template.fields):
            assert template.id in covered, template.id


def test_evidence_is_required_only_when_attached(registry: TemplateRegistry) -> None:
    response = registry.latest("exchange-execution-response")
    payload = response.skeleton()
    del payload["evidence"]
    assert rules_at(response, payload) == {("evidence", "condition")}
    payload["evidence_attached"] = False
    assert response.check(payload) == []


# --- five kinds of invalid payload, every template ------------------------------------------


@pytest.mark.parametrize("template_id", IDS)
def test_each_required_field_dropped_in_turn(registry: TemplateRegistry, template_id: str) -> None:
    """Mutation: removing any one required field, top-level or nested, is one exact error."""
    template = registry.latest(template_id)
    skeleton = template.skeleton()
    required = [
        (path, spec)
        for path, spec in walk(template, template.fields, skeleton)
        if spec.requirement is Requirement.REQUIRED
    ]
    assert required
    for path, _ in required:
        payload = copy.deepcopy(skeleton)
        parent = payload
        for part in path[:-1]:
            parent = parent[part]
        del parent[path[-1]]
        assert rules_at(template, payload) == {(text_path(path), "required")}, path


@pytest.mark.parametrize("template_id", IDS)
def test_value_outside_the_allowed_list(registry: TemplateRegistry, template_id: str) -> None:
    template = registry.latest(template_id)
    payload = template.skeleton()
    path = find(template, payload, lambda s: s.type.kind == "enum")
    set_at(payload, path, "not_an_allowed_value")
    assert rules_at(template, payload) == {(text_path(path), "enum")}


@pytest.mark.parametrize("template_id", IDS)
def test_over_long_field(registry: TemplateRegistry, template_id: str) -> None:
    template = registry.latest(template_id)
    payload = template.skeleton()
    path = find(template, payload, lambda s: s.type.kind in DEFAULT_MAX_LENGTH)
    spec = next(s for p, s in walk(template, template.fields, payload) if p == path)
    limit = spec.max_length or DEFAULT_MAX_LENGTH[spec.type.kind]
    set_at(payload, path, "x" * (limit + 1))
    assert rules_at(template, payload) == {(text_path(path), "maxLength")}


def _identifier_lists(template: Template, payload: Any) -> list[Path_]:
    return [
        p
        for p, s in walk(template, template.fields, payload)
        if s.type.kind == "list" and s.type.leaf().group == "identifier"
    ]


_LIBRARY = load_registry(TEMPLATES)
WITH_IDENTIFIERS = sorted(t.id for t in _LIBRARY.templates() if _identifier_lists(t, t.skeleton()))


def test_templates_with_identifiers() -> None:
    assert {
        "coe-art29-preservation",
        "coe-art31-mla-stored-data",
        "mla-request",
        "sap-art7-subscriber-order",
        "sap-art8-production-order",
        "sap-art9-emergency-disclosure",
        "sap-art10-emergency-mla",
        "eu-epoc-annex-i",
        "eu-epoc-pr-annex-ii",
    } <= set(WITH_IDENTIFIERS)


@pytest.mark.parametrize("template_id", WITH_IDENTIFIERS)
def test_ip_identifier_without_time_zone(registry: TemplateRegistry, template_id: str) -> None:
    template = registry.latest(template_id)
    payload = template.skeleton()
    paths = _identifier_lists(template, payload)
    identifier = payload
    for part in (*paths[0], 0):
        identifier = identifier[part]
    where = text_path((*paths[0], 0, "observed_at"))
    identifier["identifier_type"] = "ip_address"
    identifier["observed_at"] = "2026-11-18T21:14:05"  # no UTC offset
    assert rules_at(template, payload) == {(where, "format")}
    del identifier["observed_at"]
    assert rules_at(template, payload) == {(where, "condition")}


def test_evidence_digest_must_be_sha256(registry: TemplateRegistry) -> None:
    response = registry.latest("exchange-execution-response")
    payload = response.skeleton()
    payload["evidence"][0]["sha256"] = "E3B0C442" * 8  # upper case: not the canonical form
    assert rules_at(response, payload) == {("evidence/0/sha256", "format")}
    payload["evidence"][0]["sha256"] = "ab" * 31
    assert rules_at(response, payload) == {("evidence/0/sha256", "format")}


# --- personal-data categories --------------------------------------------------------------


def test_evidence_categories_follow_the_item(registry: TemplateRegistry) -> None:
    response = registry.latest("exchange-execution-response")
    payload = response.skeleton()
    payload["evidence"][0]["data_category"] = "content_data"
    assert {"content", "official_contact", "free_text"} <= response.data_categories(payload)
    assert "subscriber" not in response.data_categories(payload)
    payload["evidence"].append(
        {**payload["evidence"][0], "item_id": "E2", "data_category": "traffic_data"}
    )
    assert {"content", "traffic"} <= response.data_categories(payload)


def test_eio_persons_carry_led_categories(registry: TemplateRegistry) -> None:
    eio = registry.latest("eio-annex-a")
    payload = eio.skeleton()
    payload["persons"] = [{"status": "victim", "is_child": True, "natural_person": "..."}]
    assert eio.check(payload) == []
    assert {"victim", "child", "person_identity"} <= eio.data_categories(payload)


# --- broken and new files need no code change ------------------------------------------------


def _copy_templates(tmp_path: Path) -> Path:
    root = tmp_path / "templates"
    shutil.copytree(TEMPLATES, root)
    return root


def _load_yaml(path: Path) -> dict[str, Any]:
    loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert isinstance(loaded, dict)
    return loaded


def test_new_version_dropped_in_needs_no_code_change(tmp_path: Path) -> None:
    root = _copy_templates(tmp_path)
    data = _load_yaml(root / "eu-epoc-annex-i" / "1.0.0.yaml")
    data["version"] = "1.1.0"
    emergency = next(d for d in data["deadlines"] if d["name"] == "production_emergency")
    emergency["value"] = "PT6H"
    (root / "eu-epoc-annex-i" / "1.1.0.yaml").write_text(
        yaml.safe_dump(data, allow_unicode=True), encoding="utf-8"
    )
    registry = load_registry(root)
    newest = registry.default_for_message_type("epoc")
    assert (newest.id, newest.version) == ("eu-epoc-annex-i", "1.1.0")
    assert (
        registry.get("eu-epoc-annex-i", "1.0.0").version == "1.0.0"
    )  # old requests still validate
    payload = newest.skeleton()
    payload["deadline"] = "within_8_hours_emergency"
    payload["emergency_ground"] = "imminent_threat_to_critical_infrastructure"
    assert [d.value for d in newest.deadlines_for(payload)] == ["PT6H"]


def test_new_template_dropped_in_needs_no_code_change(tmp_path: Path) -> None:
    root = _copy_templates(tmp_path)
    data = _load_yaml(root / "exchange-withdrawal" / "1.0.0.yaml")
    data["id"] = "exchange-withdrawal-confirmation"
    data["message_types"] = ["withdrawal_confirmation"]
    target = root / "exchange-withdrawal-confirmation" / "1.0.0.yaml"
    target.parent.mkdir()
    target.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    registry = load_registry(root)
    assert registry.default_for_message_type("withdrawal_confirmation").id == data["id"]


@pytest.mark.parametrize(
    ("mutate", "named"),
    [
        (
            lambda d: d["deadlines"][0].update(condition="no_such_field"),
            "deadline 'production_no_notification'",
        ),
        (
            lambda d: d["deadlines"][0].update(condition="deadline == within_2_hours"),
            "within_2_hours",
        ),
        (
            lambda d: d["deadlines"][1].update(extends="nothing"),
            "extends unknown deadline 'nothing'",
        ),
        (lambda d: d["deadlines"].append(dict(d["deadlines"][0])), "duplicate deadline name"),
        (lambda d: d["deadlines"][0].update(value="10 days"), "deadlines/0/value"),
        (lambda d: d["roles"].update(sender=[]), "roles/sender"),
        (lambda d: d["sections"][0]["fields"][0].update(type="sha512"), "unknown field type"),
    ],
)
def test_broken_deadline_or_role_rejected_at_load(
    tmp_path: Path, mutate: Callable[[dict[str, Any]], None], named: str
) -> None:
    root = _copy_templates(tmp_path)
    path = root / "eu-epoc-annex-i" / "1.0.0.yaml"
    data = _load_yaml(path)
    mutate(data)
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    with pytest.raises(TemplateError) as info:
        load_registry(root)
    assert info.value.code == "TEMPLATE_DEFINITION_INVALID"
    assert str(path) in info.value.message
    assert named in info.value.message
