"""Rendering messages to HTML and PDF: content, languages, verification block, injection.

Every template's example payload renders to both formats; the PDF text is read back
with a PDF text extractor (pypdf). User text is data from payload to page: markup and
template syntax in a value come out literally.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
from pathlib import Path
from typing import Any

import pytest
from markupsafe import escape
from pypdf import PdfReader

from broker.errors import TemplateError
from broker.templating import Template, TemplateRegistry, TemplateValidationError, load_registry
from broker.templating.i18n import duration_text
from broker.templating.render import MessageMeta, build_document
from broker.templating.render_html import render_html
from broker.templating.render_pdf import pdf_document, render_pdf

pytestmark = pytest.mark.unit

TEMPLATES = Path(__file__).resolve().parents[2] / "templates"
EXAMPLES = Path(__file__).resolve().parents[2] / "docs" / "examples"
REGISTRY = load_registry(TEMPLATES)
IDS = [t.id for t in REGISTRY.templates()]
FINGERPRINT = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
META = MessageMeta(
    message_id="0f3c2a9e5b7d4c1a8e6f2b9d0c4a7e13",
    sender="DE-BFJ",
    recipient="NL-24X7",
    signature_fingerprint=FINGERPRINT,
    signer_key_id="DE-BFJ/sig-2026",
    created_at="2026-11-23T10:15:00+01:00",
)
INJECTIONS = (
    "<script>alert('x')</script>",
    "{{ 7 * 191 }}",
    "{% for i in range(3) %}LOOP{% endfor %}",
    "<img src=x onerror=alert(1)>",
    "**bold** --strike-- <b>tag</b>",
)


@pytest.fixture(scope="module")
def registry() -> TemplateRegistry:
    return REGISTRY


def payload_bytes(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload, ensure_ascii=False, indent=1).encode()


def pdf_text(pdf: bytes) -> str:
    return "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf)).pages)


def esc(text: str) -> str:
    """As the page's autoescape writes it."""
    return str(escape(text))


def squeeze(text: str) -> str:
    """Text without whitespace (the PDF wraps lines wherever the column ends)."""
    return re.sub(r"\s+", "", text)


# --- every template, both formats -------------------------------------------------------


@pytest.mark.parametrize("template_id", IDS)
def test_every_template_renders_to_html(registry: TemplateRegistry, template_id: str) -> None:
    template = registry.latest(template_id)
    raw = payload_bytes(template.skeleton())
    page = render_html(template, raw, META)
    assert page.startswith("<!DOCTYPE html>")
    assert esc(template.title("en")) in page
    assert f"{template.id}@{template.version}" in page
    assert META.message_id in page
    for citation in template.legal_basis:
        assert esc(citation.citation) in page
        assert f'data-tag="{citation.verification}"' in page
    for label in ("Verification", "Sender", "Signature fingerprint", "Payload SHA-256"):
        assert label in page
    assert "DE-BFJ" in page and FINGERPRINT in page
    assert hashlib.sha256(raw).hexdigest() in page
    for section in template.sections:
        assert esc(section.title.get("en")) in page


@pytest.mark.parametrize("template_id", IDS)
def test_every_template_renders_to_pdf(registry: TemplateRegistry, template_id: str) -> None:
    template = registry.latest(template_id)
    raw = payload_bytes(template.skeleton())
    pdf = render_pdf(template, raw, META)
    assert pdf.startswith(b"%PDF-")
    assert pdf.rstrip().endswith(b"%%EOF")
    reader = PdfReader(io.BytesIO(pdf))
    assert len(reader.pages) >= 1
    text = squeeze(pdf_text(pdf))
    assert squeeze(template.title("en")) in text
    assert META.message_id in text
    assert f"{template.id}@{template.version}" in text
    assert hashlib.sha256(raw).hexdigest() in text
    assert FINGERPRINT in text
    assert squeeze(template.legal_basis[0].citation) in text
    assert squeeze(template.sections[-1].title.get("en")) in text


# --- languages -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("lang", "heading", "label", "eight_hours"),
    [
        ("en", "Legal basis", "Ground for the emergency", "8 hours"),
        ("fr", "Base juridique", "Motif de l'urgence", "8 heures"),
        ("de", "Rechtsgrundlage", "Grund für den Notfall", "8 Stunden"),
    ],
)
def test_chosen_language(
    registry: TemplateRegistry, lang: str, heading: str, label: str, eight_hours: str
) -> None:
    """An emergency EPOC in each language: labels, headings and the 8-hour deadline."""
    epoc = registry.latest("eu-epoc-annex-i")
    payload = epoc.skeleton()
    payload["deadline"] = "within_8_hours_emergency"
    payload["emergency_ground"] = "imminent_threat_to_critical_infrastructure"
    raw = payload_bytes(payload)
    page = render_html(epoc, raw, META, lang)
    assert f'<html lang="{lang}">' in page
    assert heading in page and esc(label) in page
    assert eight_hours in page and "PT8H" in page
    assert "P10D" not in page  # the 10-day limits are not started by an emergency EPOC
    text = squeeze(pdf_text(render_pdf(epoc, raw, META, lang)))
    assert squeeze(epoc.title(lang)) in text
    assert squeeze(label) in text and squeeze(eight_hours) in text
    working_translation = {"fr": "traductiondetravail", "de": "Arbeitsübersetzung"}
    if lang in working_translation:
        assert working_translation[lang] in text


def test_unknown_language_falls_back_to_english(registry: TemplateRegistry) -> None:
    art29 = registry.latest("coe-art29-preservation")
    doc = build_document(art29, payload_bytes(art29.skeleton()), META, "xx")
    assert doc.lang == "en"
    assert doc.title == art29.title("en")


def test_duration_words() -> None:
    assert duration_text("P60D", "en") == "60 days"
    assert duration_text("PT96H", "de") == "96 Stunden"
    assert duration_text("P1Y2M", "fr") == "1 an 2 mois"
    assert duration_text("PT30M", "en") == "30 minutes"


# --- verification block and tags -------------------------------------------------------------


def test_verification_block_names_sender_fingerprint_and_payload_hash(
    registry: TemplateRegistry,
) -> None:
    mla = registry.latest("mla-request")
    raw = (EXAMPLES / "mla_request.json").read_bytes()  # exact bytes, as signed
    doc = build_document(mla, raw, META)
    block = dict(doc.verification)
    assert block["Message id"] == META.message_id
    assert block["Sender"] == "DE-BFJ"
    assert block["Recipient"] == "NL-24X7"
    assert block["Signature fingerprint"] == FINGERPRINT
    assert block["Payload SHA-256"] == hashlib.sha256(raw).hexdigest()
    assert block["Template"] == "mla-request@1.0.0"
    reformatted = json.dumps(json.loads(raw)).encode()  # same JSON, other bytes: other hash
    assert (
        dict(build_document(mla, reformatted, META).verification)["Payload SHA-256"]
        != (block["Payload SHA-256"])
    )


def test_unsigned_draft_says_so(registry: TemplateRegistry) -> None:
    art29 = registry.latest("coe-art29-preservation")
    draft = MessageMeta(message_id="draft", sender="DE-BFJ")
    page = render_html(art29, payload_bytes(art29.skeleton()), draft)
    assert "UNSIGNED DRAFT" in page
    assert "none (unsigned draft)" in page


def test_recalled_and_uncertain_citations_are_never_shown_as_verified(
    registry: TemplateRegistry,
) -> None:
    mla = registry.latest("mla-request")
    doc = build_document(mla, payload_bytes(mla.skeleton()), META)
    assert [c.tag for c in doc.citations] == [c.verification for c in mla.legal_basis]
    assert {c.tag for c in doc.citations} == {"R", "U"}
    for line in doc.citations:
        assert line.tag_text.startswith(f"{line.tag}:")
        assert "read in the cited source" not in line.tag_text
    page = render_html(mla, payload_bytes(mla.skeleton()), META)
    assert "R: recalled, wording to be checked" in page
    assert "U: uncertain, to be verified" in page
    assert "V: read in the cited source" not in page


def test_personal_data_categories_listed(registry: TemplateRegistry) -> None:
    mla = registry.latest("mla-request")
    payload = mla.skeleton()
    payload["persons"] = [{"status": "victim", "is_child": True}]
    doc = build_document(mla, payload_bytes(payload), META)
    assert {"victim", "child"} <= set(doc.data_categories)


# --- user text is rendered literally ----------------------------------------------------------


def _with_injections(template: Template) -> dict[str, Any]:
    payload = template.skeleton()
    payload["summary_of_facts"] = "\n".join(INJECTIONS)
    payload["reference"] = "{{ config }}{% raw %}"
    payload["requesting_authority"]["organisation"] = "<script>document.cookie</script>"
    return payload


def test_markup_and_template_syntax_in_html_come_out_as_text(registry: TemplateRegistry) -> None:
    """A drafter (or a peer) puts markup and Jinja syntax in values: nothing executes."""
    art29 = registry.latest("coe-art29-preservation")
    page = render_html(art29, payload_bytes(_with_injections(art29)), META)
    assert "<script>" not in page
    assert "<img" not in page
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;" in page
    assert "&lt;script&gt;document.cookie&lt;/script&gt;" in page
    assert "&lt;img src=x onerror=alert(1)&gt;" in page
    assert "{{ 7 * 191 }}" in page and "1337" not in page
    assert "{% for i in range(3) %}LOOP{% endfor %}" in page
    assert "LOOPLOOP" not in page
    assert "{{ config }}{% raw %}" in page
    assert "Content-Security-Policy" in page


def test_markup_and_template_syntax_in_pdf_come_out_as_text(registry: TemplateRegistry) -> None:
    art29 = registry.latest("coe-art29-preservation")
    text = squeeze(pdf_text(render_pdf(art29, payload_bytes(_with_injections(art29)), META)))
    for injected in (*INJECTIONS, "{{ config }}{% raw %}", "<script>document.cookie</script>"):
        assert squeeze(injected) in text
    assert "LOOPLOOP" not in text


def test_non_latin_text_in_pdf(registry: TemplateRegistry) -> None:
    art29 = registry.latest("coe-art29-preservation")
    payload = art29.skeleton()
    names = "Łukasz Żółć; Ιωάννης Παπαδόπουλος; Дмитрий Иванов; Søren Ærø; Ğülşen"
    payload["summary_of_facts"] = names
    text = squeeze(pdf_text(render_pdf(art29, payload_bytes(payload), META, "de")))
    assert squeeze(names) in text


# --- only valid payloads are rendered; output is reproducible ---------------------------------


def test_invalid_payload_is_not_rendered(registry: TemplateRegistry) -> None:
    art29 = registry.latest("coe-art29-preservation")
    payload = art29.skeleton()
    del payload["reference"]
    with pytest.raises(TemplateValidationError) as info:
        render_pdf(art29, payload_bytes(payload), META)
    assert [(e.path, e.rule) for e in info.value.errors] == [("reference", "required")]
    for bad in (b"\xff\xfe", b"[1, 2]", b"{not json"):
        with pytest.raises(TemplateError) as error:
            render_html(art29, bad, META)
        assert error.value.code == "PAYLOAD_NOT_JSON"


def test_pdf_is_reproducible(registry: TemplateRegistry) -> None:
    """Same message, same bytes: no wall clock in the output (time is a parameter)."""
    epoc = registry.latest("eu-epoc-pr-annex-ii")
    raw = payload_bytes(epoc.skeleton())
    assert render_pdf(epoc, raw, META) == render_pdf(epoc, raw, META)
    doc = build_document(epoc, raw, META, "fr")
    assert pdf_document(doc) == pdf_document(doc)
    assert b"/CreationDate (D:20261123" in render_pdf(epoc, raw, META)


def test_long_payload_spans_pages_with_running_header(registry: TemplateRegistry) -> None:
    art29 = registry.latest("coe-art29-preservation")
    payload = art29.skeleton()
    payload["summary_of_facts"] = "\n".join(f"Paragraph {i}: " + "facts " * 50 for i in range(50))
    pdf = render_pdf(art29, payload_bytes(payload), META)
    pages = PdfReader(io.BytesIO(pdf)).pages
    assert len(pages) >= 5
    last = pages[len(pages) - 1].extract_text()
    assert META.message_id in last
    assert f"Page {len(pages)} / {len(pages)}" in last
