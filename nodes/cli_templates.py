"""`rogatory template ...`: list, show, fill, check and print the standard templates.

    rogatory template list
    rogatory template show ID[@VERSION] [--lang fr]
    rogatory template skeleton ID[@VERSION]
    rogatory template validate ID[@VERSION] FILE [--lang fr]
    rogatory template render ID[@VERSION] FILE [--lang fr] [--pdf OUT.pdf] [--html OUT.html]

All take `--json`. The template directory is `--templates DIR`, else `$ROGATORY_TEMPLATES`,
else the repository's `templates/`. Errors are raised as broker errors; `nodes.cli.main`
prints them as one line and exits non-zero. A payload that fails validation is a result,
not an error: it is reported in full and the exit status is 1.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from broker.errors import RogatoryError
from broker.templating import Template, TemplateRegistry, load_registry
from broker.templating.model import LANGUAGES, FieldSpec
from broker.templating.render import MessageMeta, build_document, parse_payload
from broker.templating.render_html import html_document

TEMPLATES_ENV = "ROGATORY_TEMPLATES"
DEFAULT_TEMPLATES = Path(__file__).resolve().parent.parent / "templates"
EXIT_INVALID = 1


def _registry(args: argparse.Namespace) -> TemplateRegistry:
    root = args.templates or os.environ.get(TEMPLATES_ENV) or DEFAULT_TEMPLATES
    return load_registry(Path(root))


def _template(registry: TemplateRegistry, ref: str) -> Template:
    """``id`` (newest version) or ``id@version``."""
    template_id, sep, version = ref.partition("@")
    if not template_id or (sep and not version) or "@" in version:
        raise RogatoryError(f"bad template reference {ref!r}: use ID or ID@VERSION", code="USAGE")
    return registry.get(template_id, version) if sep else registry.latest(template_id)


def _print(args: argparse.Namespace, data: Any, text: str) -> None:
    print(json.dumps(data, indent=2, ensure_ascii=False) if args.json else text)


def _defaults(registry: TemplateRegistry) -> dict[str, str]:
    """Message type -> ``id@version`` of its default template."""
    out = {}
    for message_type in registry.message_types():
        template = registry.default_for_message_type(message_type)
        out[message_type] = f"{template.id}@{template.version}"
    return out


# -- list ------------------------------------------------------------------------------


def cmd_list(args: argparse.Namespace) -> int:
    registry = _registry(args)
    defaults = _defaults(registry)
    rows = [
        {
            "id": t.id,
            "version": t.version,
            "message_types": list(t.message_types),
            "default_for": [m for m, ref in defaults.items() if ref == f"{t.id}@{t.version}"],
            "title": t.title(args.lang),
        }
        for t in registry.templates()
    ]
    lines = [f"{'ID':40}  {'VERSION':8}  {'MESSAGE TYPES':32}  TITLE"]
    for row in rows:
        types = ", ".join(
            m + ("*" if m in row["default_for"] else "") for m in row["message_types"]
        )
        lines.append(f"{row['id']:40}  {row['version']:8}  {types:32}  {row['title'][:70]}")
    lines.append(f"{len(rows)} templates; * = default template for that message type")
    _print(args, {"templates": rows, "message_types": defaults}, "\n".join(lines))
    return 0


# -- show ------------------------------------------------------------------------------


def _field(spec: FieldSpec, lang: str) -> dict[str, Any]:
    return {
        "name": spec.name,
        "type": str(spec.type),
        "required": spec.requirement.value,
        "condition": spec.condition_text,
        "allowed_values": list(spec.allowed_values),
        "max_length": spec.max_length,
        "data_category": sorted(spec.data_category),
        "label": spec.label.get(lang),
        "labels": dict(spec.label.values),
        "verification": spec.verification,
        "description": spec.description,
    }


def describe(template: Template, lang: str) -> dict[str, Any]:
    """Everything a reviewer needs about one template, as JSON-ready data."""
    by_name = {f.name: f for f in template.fields}
    return {
        "id": template.id,
        "version": template.version,
        "title": template.title(lang),
        "titles": dict(template.definition.title.values),
        "message_types": list(template.message_types),
        "default_for": list(template.definition.default_for),
        "legal_basis": [
            {"citation": c.citation, "verification": c.verification, "note": c.note}
            for c in template.legal_basis
        ],
        "roles": {
            "sender": list(template.roles.sender),
            "recipient": list(template.roles.recipient),
        },
        "deadlines": [
            {
                "name": d.name,
                "value": d.value,
                "kind": d.kind,
                "condition": d.condition_text,
                "starts": d.starts,
                "extends": d.extends,
                "basis": d.basis,
                "verification": d.verification,
            }
            for d in template.deadlines
        ],
        "provenance": dict(template.provenance),
        "sections": [
            {
                "id": s.id,
                "title": s.title.get(lang),
                "fields": [_field(by_name[n], lang) for n in s.field_names],
            }
            for s in template.sections
        ],
        "field_groups": {
            name: [_field(f, lang) for f in group.fields]
            for name, group in sorted(template.field_groups.items())
        },
        "json_schema": template.json_schema,
    }


def _show_text(info: dict[str, Any]) -> str:
    lines = [f"{info['id']} {info['version']}: {info['title']}"]
    lines.append(f"message types: {', '.join(info['message_types'])}")
    lines.append("legal basis:")
    lines += [f"  - {c['citation']} [{c['verification']}]" for c in info["legal_basis"]]
    roles = info["roles"]
    lines.append(f"sender roles: {', '.join(roles['sender'])}")
    lines.append(f"recipient roles: {', '.join(roles['recipient'])}")
    lines.append("deadlines:" if info["deadlines"] else "deadlines: none")
    for d in info["deadlines"]:
        when = f" when {d['condition']}" if d["condition"] else ""
        kind = f" ({d['kind']})" if d["kind"] else ""
        lines.append(
            f"  - {d['name']}: {d['value']}{kind} from {d['starts']}{when} [{d['verification']}]"
        )
    lines.append(f"provenance: {info['provenance'].get('verification', '')}")
    for section in info["sections"]:
        lines.append(f"[{section['id']}] {section['title']}")
        for f in section["fields"]:
            need = f["required"] + (f": {f['condition']}" if f["condition"] else "")
            tag = f" [{f['verification']}]" if f["verification"] else ""
            lines.append(f"    {f['name']:44} {f['type']:28} {need}{tag}")
    return "\n".join(lines)


def cmd_show(args: argparse.Namespace) -> int:
    info = describe(_template(_registry(args), args.template), args.lang)
    _print(args, info, _show_text(info))
    return 0


# -- skeleton, validate ----------------------------------------------------------------


def cmd_skeleton(args: argparse.Namespace) -> int:
    skeleton = _template(_registry(args), args.template).skeleton()
    print(json.dumps(skeleton, indent=2, ensure_ascii=False))
    return 0


def _read_payload(path: str) -> bytes:
    return sys.stdin.buffer.read() if path == "-" else Path(path).read_bytes()


def cmd_validate(args: argparse.Namespace) -> int:
    template = _template(_registry(args), args.template)
    payload = parse_payload(_read_payload(args.file))
    errors = template.check(payload, lang=args.lang)
    ref = f"{template.id}@{template.version}"
    data: dict[str, Any] = {"template": ref, "valid": not errors}
    if errors:
        data["errors"] = [
            {"path": e.path, "rule": e.rule, "label": e.label, "message": e.message} for e in errors
        ]
        lines = [f"invalid: {len(errors)} error(s) against {ref}"]
        lines += [f"  {e.path or '(payload)'}: {e.rule} - {e.label}: {e.message}" for e in errors]
        _print(args, data, "\n".join(lines))
        return EXIT_INVALID
    deadlines = template.deadlines_for(payload)
    data["data_categories"] = sorted(template.data_categories(payload))
    data["deadlines"] = [{"name": d.name, "value": d.value, "starts": d.starts} for d in deadlines]
    text = [f"valid against {ref}"]
    text.append(f"personal-data categories: {', '.join(data['data_categories']) or 'none'}")
    text += [f"starts deadline {d.name}: {d.value} from {d.starts}" for d in deadlines]
    _print(args, data, "\n".join(text))
    return 0


# -- render ----------------------------------------------------------------------------


def cmd_render(args: argparse.Namespace) -> int:
    template = _template(_registry(args), args.template)
    payload = _read_payload(args.file)
    meta = MessageMeta(
        message_id=args.message_id,
        sender=args.sender,
        recipient=args.recipient,
        signature_fingerprint=args.signature_fingerprint,
        signer_key_id=args.signer_key_id,
        created_at=args.created_at,
    )
    # Imported here: the PDF library takes half a second to import and only this needs it.
    from broker.templating.render_pdf import pdf_document  # noqa: PLC0415

    doc = build_document(template, payload, meta, args.lang)
    html = html_document(doc)
    pdf = pdf_document(doc, meta.created_at) if args.pdf else None
    if args.html:
        Path(args.html).write_text(html, encoding="utf-8")
    if pdf is not None:
        Path(args.pdf).write_bytes(pdf)
    if not args.html and not args.pdf and not args.json:
        sys.stdout.write(html)
        return 0
    data = {
        "template": f"{template.id}@{template.version}",
        "lang": args.lang,
        "message_id": args.message_id,
        "payload_sha256": doc.payload_sha256,
        "html": args.html,
        "pdf": args.pdf,
        "pdf_bytes": len(pdf) if pdf is not None else None,
    }
    written = [p for p in (args.html, args.pdf) if p]
    _print(args, data, "\n".join(f"wrote {p}" for p in written) or html)
    return 0


# -- parser ----------------------------------------------------------------------------


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:  # type: ignore[type-arg]
    """Add `rogatory template ...` to the CLI's subcommands."""
    where = argparse.ArgumentParser(add_help=False)
    where.add_argument(
        "--templates", help=f"template directory (default: ${TEMPLATES_ENV} or the repository's)"
    )
    where.add_argument("--lang", choices=LANGUAGES, default="en", help="language of labels")
    ref = argparse.ArgumentParser(add_help=False)
    ref.add_argument("template", metavar="ID", help="template id, or id@version")

    tpl = sub.add_parser(
        "template", help="standard templates: list, show, skeleton, validate, render"
    )
    actions = tpl.add_subparsers(dest="action", required=True)

    actions.add_parser("list", parents=[common, where], help="list templates").set_defaults(
        func=cmd_list
    )
    actions.add_parser(
        "show", parents=[common, where, ref], help="a template's legal basis, roles, fields"
    ).set_defaults(func=cmd_show)
    actions.add_parser(
        "skeleton", parents=[common, where, ref], help="an example payload to fill"
    ).set_defaults(func=cmd_skeleton)

    validate = actions.add_parser(
        "validate", parents=[common, where, ref], help="check a payload file (- for stdin)"
    )
    validate.add_argument("file", metavar="FILE")
    validate.set_defaults(func=cmd_validate)

    render = actions.add_parser(
        "render", parents=[common, where, ref], help="print a payload as HTML and/or PDF"
    )
    render.add_argument("file", metavar="FILE")
    render.add_argument("--pdf", metavar="OUT.pdf", help="write the PDF here")
    render.add_argument("--html", metavar="OUT.html", help="write the HTML here")
    render.add_argument(
        "--message-id", default="draft", help="message id for the verification block"
    )
    render.add_argument("--sender", default="-", help="sending node id")
    render.add_argument("--recipient", default="", help="receiving node id")
    render.add_argument(
        "--signature-fingerprint", default="", help="envelope signature fingerprint"
    )
    render.add_argument("--signer-key-id", default="", help="id of the signing key")
    render.add_argument("--created-at", default="", help="creation time, ISO 8601 with offset")
    render.set_defaults(func=cmd_render)
