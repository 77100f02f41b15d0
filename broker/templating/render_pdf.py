"""Render a message to PDF with fpdf2 (pure Python; installs with pip alone).

The fonts are DejaVu Sans (regular and bold, Bitstream Vera licence, ``fonts/``),
embedded and subset, so Latin, Greek and Cyrillic text prints the same on every
machine without system fonts. User text is drawn as text: no markdown, no HTML, no
template is ever built from it. The output is deterministic: the same document gives
the same bytes (no clock: the creation date is the message's, or none).

Layout (A4): title and references, notices, legal basis with verification tags, the
deadlines this message starts, the form's sections as two-column tables (nested groups
indented), then the verification block (message id, sender, signature fingerprint,
payload SHA-256). Every page carries the template, message id and page number.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from fpdf import FPDF, FontFace
from fpdf.enums import XPos, YPos
from fpdf.table import Table

from broker.templating.model import DEFAULT_LANGUAGE
from broker.templating.render import Document, MessageMeta, Row, build_document
from broker.templating.template import Template

FONT_DIR = Path(__file__).resolve().parent / "fonts"
FONT = "DejaVu"
_FONT_FILES = {"": "DejaVuSans.ttf", "B": "DejaVuSans-Bold.ttf"}

_MARGIN_MM = 16
_LABEL_SHARE = 38  # percent of the width for the label column
_INDENT_MM = 4
_LINE_MM = 4.4
_MAX_ROW_MM = 200  # taller than this, a value leaves the table (A4 body is ~265 mm)
_HEADING_FILL = (232, 236, 241)
_GROUP_FILL = (246, 247, 249)
_MUTED = (85, 85, 85)
_RULE = (190, 196, 204)
_ALERT = (176, 0, 0)
# fpdf2 writes no wall-clock time when the creation date is this value (reproducible output).
_NO_DATE = datetime(1969, 12, 31, 19, 0, 0, tzinfo=UTC)


class _Form(FPDF):
    def __init__(self, doc: Document) -> None:
        super().__init__(orientation="portrait", unit="mm", format="A4")
        self.doc = doc
        for style, name in _FONT_FILES.items():
            self.add_font(FONT, style, FONT_DIR / name)
        self.set_margins(_MARGIN_MM, _MARGIN_MM, _MARGIN_MM)
        self.set_auto_page_break(auto=True, margin=_MARGIN_MM)
        self.alias_nb_pages()

    def header(self) -> None:
        if self.page_no() == 1:
            return
        self.set_font(FONT, "", 7.5)
        self.set_text_color(*_MUTED)
        self.cell(0, 4, f"{self.doc.template_ref} · {self.doc.message_id}", align="L")
        self.ln(6)
        self.set_text_color(0, 0, 0)

    def footer(self) -> None:
        self.set_y(-11)
        self.set_font(FONT, "", 7.5)
        self.set_text_color(*_MUTED)
        digest = self.doc.payload_sha256
        self.cell(0, 4, f"SHA-256 {digest[:16]}…{digest[-8:]}", align="L")
        self.set_x(self.l_margin)
        page = self.doc.labels["page"]
        self.cell(0, 4, f"{page} {self.page_no()} / {{nb}}", align="R")
        self.set_text_color(0, 0, 0)

    def heading(self, text: str) -> None:
        if self.will_page_break(22):
            self.add_page()
        self.ln(2)
        self.set_font(FONT, "B", 10.5)
        self.set_fill_color(*_HEADING_FILL)
        self.multi_cell(
            0, 6.5, text, fill=True, padding=(1, 2), new_x=XPos.LMARGIN, new_y=YPos.NEXT
        )
        self.ln(1)

    def paragraph(
        self,
        text: str,
        size: float = 9,
        *,
        bold: bool = False,
        color: tuple[int, int, int] = (0, 0, 0),
    ) -> None:
        self.set_font(FONT, "B" if bold else "", size)
        self.set_text_color(*color)
        self.multi_cell(0, size * 0.48, text, align="L", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        self.set_text_color(0, 0, 0)

    def rows(self, rows: tuple[Row, ...], *, mono_values: bool = False) -> None:
        """Rows as a two-column table; a value too long for one page is set full width.

        (A table row cannot break across pages, and a narrative field may hold 20,000
        characters.)
        """
        size = 8.5 if mono_values else 9
        run: list[tuple[int, Row]] = []
        for depth, row in _flatten(rows, 0):
            if not row.children and self._too_tall(row.text, size):
                self._table(run, size)
                run = []
                self._long(row, depth, size)
            else:
                run.append((depth, row))
        self._table(run, size)

    def _too_tall(self, text: str, size: float) -> bool:
        self.set_font(FONT, "", size)
        width = self.epw * (100 - _LABEL_SHARE) / 100 - 3
        lines = self.multi_cell(width, _LINE_MM, text, dry_run=True, output="LINES")
        return len(lines) * _LINE_MM > _MAX_ROW_MM  # type: ignore[arg-type]

    def _table(self, run: list[tuple[int, Row]], size: float) -> None:
        if not run:
            return
        self.set_font(FONT, "", size)
        self.set_fill_color(255, 255, 255)
        self.set_draw_color(*_RULE)
        self.set_line_width(0.2)
        with self.table(
            col_widths=(_LABEL_SHARE, 100 - _LABEL_SHARE),
            first_row_as_headings=False,
            borders_layout="HORIZONTAL_LINES",
            text_align="LEFT",
            v_align="TOP",
            line_height=_LINE_MM,
            padding=(1, 1.5),
            width=self.epw,
        ) as table:
            for depth, row in run:
                self._row(table, row, depth)
        self.set_draw_color(0, 0, 0)

    def _row(self, table: Table, row: Row, depth: int) -> None:
        left = 1.5 + depth * _INDENT_MM
        line = table.row()
        if row.children:
            style = FontFace(emphasis="BOLD", fill_color=_GROUP_FILL)
            line.cell(row.label, colspan=2, style=style, padding=(1, 1.5, 1, left))
            return
        line.cell(row.label, style=FontFace(emphasis="BOLD"), padding=(1, 1.5, 1, left))
        line.cell(row.text)

    def _long(self, row: Row, depth: int, size: float) -> None:
        indent = depth * _INDENT_MM
        self.ln(1)
        self.set_x(self.l_margin + indent)
        self.set_font(FONT, "B", size)
        self.multi_cell(0, _LINE_MM, row.label, align="L", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        self.set_font(FONT, "", size)
        self.set_x(self.l_margin + indent)
        self.multi_cell(0, _LINE_MM, row.text, align="L", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        self.set_draw_color(*_RULE)
        self.line(self.l_margin, self.get_y() + 1, self.l_margin + self.epw, self.get_y() + 1)
        self.set_draw_color(0, 0, 0)
        self.ln(2)


def _flatten(rows: tuple[Row, ...], depth: int) -> list[tuple[int, Row]]:
    """Rows depth first, each with its nesting depth (group rows before their members)."""
    out: list[tuple[int, Row]] = []
    for row in rows:
        out.append((depth, row))
        out.extend(_flatten(row.children, depth + 1))
    return out


def pdf_document(doc: Document, created_at: str = "") -> bytes:
    """Lay out a built document as PDF bytes.

    Args:
        doc: from :func:`broker.templating.render.build_document`.
        created_at: the message's creation time (ISO 8601 with offset) for the PDF
            metadata; empty or unparsable: no date is written.
    """
    pdf = _Form(doc)
    pdf.set_title(f"{doc.title} - {doc.message_id}")
    pdf.set_subject(doc.template_ref)
    pdf.set_creator("Rogatory")
    pdf.set_lang(doc.lang)
    pdf.set_creation_date(_created(created_at) or _NO_DATE)
    pdf.add_page()
    pdf.paragraph(doc.title, 14, bold=True)
    pdf.ln(1)
    pdf.paragraph(
        f"{doc.template_ref} · {doc.labels['message_id']}: {doc.message_id}", 9, color=_MUTED
    )
    for notice in doc.notices:
        pdf.ln(1.5)
        pdf.set_draw_color(*_ALERT)
        pdf.set_text_color(*_ALERT)
        pdf.set_font(FONT, "", 9)
        pdf.multi_cell(0, 4.6, notice, border=1, padding=2, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        pdf.set_text_color(0, 0, 0)
        pdf.set_draw_color(0, 0, 0)
    pdf.heading(doc.labels["legal_basis"])
    for c in doc.citations:
        note = f" ({c.note})" if c.note else ""
        pdf.paragraph(f"• {c.citation}{note}  [{c.tag_text}]", 9)
    pdf.heading(doc.labels["deadlines"])
    if not doc.deadlines:
        pdf.paragraph(doc.labels["no_deadlines"], 9)
    for d in doc.deadlines:
        pdf.paragraph(f"• {d.text} ({d.value})", 9, bold=True)
        pdf.paragraph(f"   {d.basis}  [{d.tag_text}]", 8.5)
    for block in doc.blocks:
        pdf.heading(block.title)
        pdf.rows(block.rows)
    pdf.heading(doc.labels["verification"])
    pdf.rows(tuple(Row(label, value) for label, value in doc.verification), mono_values=True)
    pdf.ln(1.5)
    pdf.paragraph(doc.labels["verification_note"], 8, color=_MUTED)
    if doc.data_categories:
        pdf.paragraph(
            f"{doc.labels['data_categories']}: {', '.join(doc.data_categories)}", 8, color=_MUTED
        )
    pdf.paragraph(f"{doc.labels['provenance']}: {doc.provenance}", 8, color=_MUTED)
    return bytes(pdf.output())


def _created(text: str) -> datetime | None:
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else None


def render_pdf(
    template: Template, payload: bytes, meta: MessageMeta, lang: str = DEFAULT_LANGUAGE
) -> bytes:
    """The message as PDF bytes in ``lang``.

    Raises:
        TemplateError: the payload is not a JSON object or fails the template.
    """
    return pdf_document(build_document(template, payload, meta, lang), meta.created_at)
