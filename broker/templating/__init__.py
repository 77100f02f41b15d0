"""The template engine: load versioned template files, validate payloads against them.

Templates are data (``templates/<id>/<version>.yaml``); this package compiles each to
JSON Schema 2020-12 plus cross-field conditions and reports failures by field path
and rule. Payloads are flat JSON objects keyed by field name (sections are
presentation only); ``group:`` fields nest objects and ``list<...>`` fields hold arrays.

Example::

    reg = load_registry(Path("templates"))
    template = reg.default_for_message_type("preservation")
    template.validate(payload, lang="fr")
    template.deadlines_for(payload)  # the legal deadlines this message starts

Rendering lives in its own modules so that importing the engine stays light (the PDF
library is imported only by those who render): :mod:`broker.templating.render`
(the printable document), :mod:`broker.templating.render_html` and
:mod:`broker.templating.render_pdf`.
"""

from broker.templating.loader import load_registry, parse_template
from broker.templating.model import (
    DATA_CATEGORIES,
    LANGUAGES,
    FieldError,
    TemplateValidationError,
)
from broker.templating.registry import TemplateRegistry
from broker.templating.template import Template

__all__ = [
    "DATA_CATEGORIES",
    "LANGUAGES",
    "FieldError",
    "Template",
    "TemplateRegistry",
    "TemplateValidationError",
    "load_registry",
    "parse_template",
]
