"""The printable document of a message: what the HTML and PDF renderers lay out.

:func:`build_document` turns a template, the exact payload bytes and the message's
verification data into a :class:`Document` of plain strings in one language: the
title, the citations with their verification tags, the deadlines the message starts,
every section with the values present, and a verification block (message id, sender,
signature fingerprint, SHA-256 of the payload bytes). The renderers
(:mod:`broker.templating.render_html`, :mod:`broker.templating.render_pdf`) only lay
that out, so both show the same content and user text is never interpreted: it stays
data from here to the output (escaped in HTML, drawn as text in the PDF).

Pure: no clock (the creation time is a parameter), no files.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from broker.errors import TemplateError
from broker.templating.i18n import (
    VERIFICATION_TAGS,
    duration_text,
    starts_text,
    ui,
    value_text,
)
from broker.templating.model import DEFAULT_LANGUAGE, LANGUAGES, FieldSpec, FieldType
from broker.templating.template import Template

PAYLOAD_NOT_JSON = "PAYLOAD_NOT_JSON"
MAX_LIST_ITEMS = 1000


@dataclass(frozen=True)
class MessageMeta:
    """What the verification block says about the message carrying the payload.

    Attributes:
        message_id: the envelope's message id (``draft`` before sending).
        sender: the sending node id.
        recipient: the receiving node id, if known.
        signature_fingerprint: fingerprint of the envelope signature; empty for an
            unsigned draft (the block then says so instead of inventing one).
        signer_key_id: id of the key that signed, if known.
        created_at: creation time as ISO 8601 text; empty when not known. Passed in,
            never read from the clock.
    """

    message_id: str
    sender: str
    recipient: str = ""
    signature_fingerprint: str = ""
    signer_key_id: str = ""
    created_at: str = ""


@dataclass(frozen=True)
class Row:
    """One labelled value; a group or list entry holds ``children`` instead of text."""

    label: str
    text: str = ""
    children: tuple[Row, ...] = ()


@dataclass(frozen=True)
class Block:
    """A section of the form: its title and its rows."""

    title: str
    rows: tuple[Row, ...]


@dataclass(frozen=True)
class CitationLine:
    """A legal basis with its verification tag spelled out."""

    citation: str
    tag: str
    tag_text: str
    note: str = ""


@dataclass(frozen=True)
class DeadlineLine:
    """A deadline this message starts, in words."""

    name: str
    value: str
    text: str
    basis: str
    tag: str
    tag_text: str


@dataclass(frozen=True)
class Document:
    """Everything a rendered message shows, in one language, as plain strings."""

    lang: str
    title: str
    template_ref: str
    message_types: tuple[str, ...]
    citations: tuple[CitationLine, ...]
    deadlines: tuple[DeadlineLine, ...]
    blocks: tuple[Block, ...]
    verification: tuple[tuple[str, str], ...]
    provenance: str
    payload_sha256: str
    message_id: str
    notices: tuple[str, ...] = ()
    data_categories: tuple[str, ...] = ()
    labels: Mapping[str, str] = field(default_factory=dict)


def parse_payload(payload: bytes) -> dict[str, Any]:
    """Decode payload bytes as one JSON object.

    Raises:
        TemplateError: code ``PAYLOAD_NOT_JSON`` if the bytes are not a UTF-8 JSON object.
    """
    try:
        value = json.loads(payload)
    except (ValueError, UnicodeDecodeError) as e:
        raise TemplateError("payload is not valid UTF-8 JSON", code=PAYLOAD_NOT_JSON) from e
    if not isinstance(value, dict):
        raise TemplateError("payload must be a JSON object", code=PAYLOAD_NOT_JSON)
    return value


def _rows(
    template: Template, fields: tuple[FieldSpec, ...], obj: Mapping[str, Any], lang: str
) -> tuple[Row, ...]:
    return tuple(
        _row(template, spec.type, spec.label.get(lang), obj[spec.name], lang)
        for spec in fields
        if spec.name in obj
    )


def _row(template: Template, ftype: FieldType, label: str, value: Any, lang: str) -> Row:
    if ftype.group is not None and isinstance(value, Mapping):
        group = template.field_groups[ftype.group]
        return Row(label, children=_rows(template, group.fields, value, lang))
    if ftype.kind == "list" and ftype.item is not None and isinstance(value, list):
        item = ftype.item
        if item.group is not None:
            return Row(
                label,
                children=tuple(
                    _row(template, item, f"{label} {i}", entry, lang)
                    for i, entry in enumerate(value[:MAX_LIST_ITEMS], start=1)
                ),
            )
        return Row(label, "\n".join(value_text(item.kind, v, lang) for v in value[:MAX_LIST_ITEMS]))
    return Row(label, value_text(ftype.kind, value, lang))


def _blocks(template: Template, payload: Mapping[str, Any], lang: str) -> tuple[Block, ...]:
    by_name = {spec.name: spec for spec in template.fields}
    blocks = []
    for section in template.sections:
        fields = tuple(by_name[name] for name in section.field_names)
        rows = _rows(template, fields, payload, lang)
        blocks.append(Block(section.title.get(lang), rows or (Row(ui("not_completed", lang)),)))
    return tuple(blocks)


def build_document(
    template: Template, payload: bytes, meta: MessageMeta, lang: str = DEFAULT_LANGUAGE
) -> Document:
    """The printable content of a message in ``lang`` (``en``, ``fr`` or ``de``).

    Args:
        template: the template the payload was built from.
        payload: the exact payload bytes (their SHA-256 goes into the verification block).
        meta: message id, sender, signature fingerprint... of the envelope.
        lang: language of labels and headings; an unknown one falls back to English.

    Raises:
        TemplateError: the bytes are not a JSON object (``PAYLOAD_NOT_JSON``), or the
            payload fails the template (:class:`TemplateValidationError`): only valid
            payloads are rendered for signature and the court file.
    """
    lang = lang if lang in LANGUAGES else DEFAULT_LANGUAGE
    data = parse_payload(payload)
    template.validate(data, lang=lang)
    digest = hashlib.sha256(payload).hexdigest()
    citations = tuple(
        CitationLine(c.citation, c.verification, VERIFICATION_TAGS[c.verification][lang], c.note)
        for c in template.legal_basis
    )
    deadlines = tuple(
        DeadlineLine(
            name=d.name,
            value=d.value,
            text=" ".join(
                part
                for part in (
                    ui(f"kind_{d.kind}", lang) if d.kind else "",
                    duration_text(d.value, lang),
                    starts_text(d.starts, d.extends, lang),
                )
                if part
            ),
            basis=d.basis,
            tag=d.verification,
            tag_text=VERIFICATION_TAGS[d.verification][lang],
        )
        for d in template.deadlines_for(data)
    )
    unsigned = ui("unsigned_draft", lang)
    verification = (
        (ui("message_id", lang), meta.message_id),
        (ui("template", lang), f"{template.id}@{template.version}"),
        (ui("sender", lang), meta.sender),
        (ui("recipient", lang), meta.recipient or "-"),
        (ui("created", lang), meta.created_at or "-"),
        (ui("signing_key", lang), meta.signer_key_id or "-"),
        (ui("signature_fingerprint", lang), meta.signature_fingerprint or unsigned),
        (ui("payload_sha256", lang), digest),
    )
    notices = (ui("translation_notice", lang),) if lang != DEFAULT_LANGUAGE else ()
    if not meta.signature_fingerprint:
        notices = (*notices, ui("unsigned_notice", lang))
    return Document(
        lang=lang,
        title=template.title(lang),
        template_ref=f"{template.id}@{template.version}",
        message_types=template.message_types,
        citations=citations,
        deadlines=deadlines,
        blocks=_blocks(template, data, lang),
        verification=verification,
        provenance=str(template.provenance.get("verification", "")),
        payload_sha256=digest,
        message_id=meta.message_id,
        notices=notices,
        data_categories=tuple(sorted(template.data_categories(data))),
        labels={
            key: ui(key, lang)
            for key in (
                "legal_basis",
                "deadlines",
                "no_deadlines",
                "verification",
                "provenance",
                "data_categories",
                "message_id",
                "verification_note",
                "page",
            )
        },
    )
