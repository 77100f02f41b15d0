"""Render a message to a self-contained HTML page (for review, print and the court file).

The layout is one Jinja2 template kept in this module; payload values reach it only as
data and are escaped by autoescape, so markup or template syntax in user text (``<script>``,
``{{ ... }}``, ``{% ... %}``) comes out as text. A Content-Security-Policy forbids
scripts and remote content as a second line of defence.
"""

from __future__ import annotations

from jinja2 import Environment, StrictUndefined

from broker.templating.model import DEFAULT_LANGUAGE
from broker.templating.render import Document, MessageMeta, build_document
from broker.templating.template import Template

_LAYOUT = """<!DOCTYPE html>
<html lang="{{ doc.lang }}">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'">
<meta name="generator" content="Rogatory">
<title>{{ doc.title }} - {{ doc.message_id }}</title>
<style>
body { font-family: "DejaVu Sans", Arial, sans-serif; font-size: 10pt; color: #111;
       max-width: 190mm; margin: 12mm auto; line-height: 1.35; }
h1 { font-size: 14pt; margin: 0 0 2mm; }
h2 { font-size: 11pt; background: #e8ecf1; padding: 1.5mm 2mm; margin: 5mm 0 1mm; }
.ref { color: #444; margin: 0 0 3mm; }
.notice { border: 1px solid #b00; color: #b00; padding: 1.5mm 2mm; margin: 2mm 0; }
.tag { font-size: 8pt; color: #555; }
table { border-collapse: collapse; width: 100%; }
td { border-bottom: 1px solid #d5dae0; padding: 1.2mm 2mm; vertical-align: top; }
td.label { width: 38%; font-weight: bold; }
td.value { white-space: pre-wrap; overflow-wrap: anywhere; }
td.group { font-weight: bold; background: #f6f7f9; }
.verification { border: 1.5px solid #333; margin-top: 6mm; padding: 0 2mm 2mm; }
.verification td.value { font-family: "DejaVu Sans Mono", monospace; font-size: 8.5pt; }
.small { font-size: 8pt; color: #444; }
@media print { body { margin: 0 auto; } h2 { break-after: avoid; } tr { break-inside: avoid; } }
</style>
</head>
<body>
{%- macro render_row(row, depth) %}
{%- if row.children %}<tr><td class="group" colspan="2"
 style="padding-left: {{ 2 + depth * 5 }}mm">{{ row.label }}</td></tr>
{% for child in row.children %}{{ render_row(child, depth + 1) }}{% endfor %}
{%- else %}<tr><td class="label" style="padding-left: {{ 2 + depth * 5 }}mm">{{ row.label }}</td>
<td class="value">{{ row.text }}</td></tr>
{% endif %}
{%- endmacro %}
<header>
<h1>{{ doc.title }}</h1>
<p class="ref">{{ doc.template_ref }} &middot; {{ doc.labels.message_id }}: {{ doc.message_id }}</p>
{% for notice in doc.notices %}<p class="notice">{{ notice }}</p>
{% endfor %}
</header>
<section class="legal-basis">
<h2>{{ doc.labels.legal_basis }}</h2>
<ul>
{% for c in doc.citations %}<li>{{ c.citation }}{% if c.note %} ({{ c.note }}){% endif %}
 <span class="tag" data-tag="{{ c.tag }}">[{{ c.tag_text }}]</span></li>
{% endfor %}</ul>
</section>
<section class="deadlines">
<h2>{{ doc.labels.deadlines }}</h2>
{% if doc.deadlines %}<ul>
{% for d in doc.deadlines %}<li><strong>{{ d.text }}</strong> ({{ d.value }}) - {{ d.basis }}
 <span class="tag" data-tag="{{ d.tag }}">[{{ d.tag_text }}]</span></li>
{% endfor %}</ul>{% else %}<p>{{ doc.labels.no_deadlines }}</p>{% endif %}
</section>
{% for block in doc.blocks %}<section class="form-section">
<h2>{{ block.title }}</h2>
<table>
{% for row in block.rows %}{{ render_row(row, 0) }}{% endfor %}
</table>
</section>
{% endfor %}
<section class="verification">
<h2>{{ doc.labels.verification }}</h2>
<table>
{% for label, value in doc.verification %}<tr><td class="label">{{ label }}</td>
<td class="value">{{ value }}</td></tr>
{% endfor %}</table>
<p class="small">{{ doc.labels.verification_note }}</p>
{% if doc.data_categories %}<p class="small">{{ doc.labels.data_categories }}:
 {{ doc.data_categories | join(", ") }}</p>{% endif %}
<p class="small">{{ doc.labels.provenance }}: {{ doc.provenance }}</p>
</section>
</body>
</html>
"""

_ENV = Environment(autoescape=True, undefined=StrictUndefined, keep_trailing_newline=True)
_PAGE = _ENV.from_string(_LAYOUT)


def html_document(doc: Document) -> str:
    """Lay out a built document as one HTML page."""
    return _PAGE.render(doc=doc)


def render_html(
    template: Template, payload: bytes, meta: MessageMeta, lang: str = DEFAULT_LANGUAGE
) -> str:
    """The message as a self-contained HTML page in ``lang``.

    Raises:
        TemplateError: the payload is not a JSON object or fails the template.
    """
    return html_document(build_document(template, payload, meta, lang))
