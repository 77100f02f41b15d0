"""The auditor's report: response times, legal deadlines, the volume chart, and HTML
rendering of hostile record fields (no node, no I/O)."""

from __future__ import annotations

from dataclasses import dataclass
from html.parser import HTMLParser

import pytest

from broker.audit import EventType
from broker.audit.replay import Replay
from broker.audit.report import MAX_BAR_WIDTH, Verification, render_report, volume_chart
from broker.audit.timeliness import (
    NOT_IN_LOG,
    Spread,
    add_iso_duration,
    deadline_checks,
    response_times,
)
from broker.audit.verifier import Finding
from broker.model import MessageId
from broker.templating import load_registry
from broker.templating.model import Deadline
from nodes.node import TEMPLATES_DIR
from tests.unit.test_audit_replay import DE, NL, T0, Log, _replay, _request

pytestmark = pytest.mark.unit

DAY = 86_400_000
HOSTILE = '<script>alert(1)</script><img src=x onerror="alert(2)">'


def test_nearest_rank_percentiles() -> None:
    assert Spread.of(list(range(10, 0, -1))) == Spread(10, 5, 9, 10)
    assert Spread.of([7]) == Spread(1, 7, 7, 7)
    assert Spread.of([]) == Spread(0, None, None, None)


def test_iso_durations_on_the_utc_calendar() -> None:
    jan31 = 1_769_817_600_000                      # 2026-01-31 00:00:00Z
    assert add_iso_duration(T0, "P60D") == T0 + 60 * DAY
    assert add_iso_duration(T0, "PT8H") == T0 + 8 * 3_600_000
    assert add_iso_duration(T0, "P1W") == T0 + 7 * DAY
    assert add_iso_duration(jan31, "P1M") == jan31 + 28 * DAY        # to 2026-02-28
    assert add_iso_duration(T0, "P1Y") == T0 + 365 * DAY
    assert add_iso_duration(T0, "60 days") is None
    assert add_iso_duration(T0, "P") is None


def test_response_times_per_addressee() -> None:
    de, nl, us = Log(DE), Log(NL), Log("US-OIA")
    for i in range(3):
        _request(de, nl, T0 + i * 60_000)
    pending = MessageId.new()
    de.add(T0, EventType.ENVELOPE_SENT, pending, peer="US-OIA")
    [times_nl, times_us] = response_times(_replay(de, nl, us).result())
    assert (times_nl.agency, times_nl.requests, times_nl.open_requests) == (NL, 3, 0)
    assert times_nl.delivery == Spread(3, 5_020, 5_020, 5_020)
    assert times_nl.transit == Spread(3, 5_000, 5_000, 5_000)
    assert (times_us.requests, times_us.open_requests, times_us.delivery.count) == (1, 1, 0)


def test_deadlines_from_the_templates_are_started_never_judged() -> None:
    """A production order received by NL: its 45-day limit starts at receipt; the
    conditional limits depend on the payload and on provider service, which the log
    does not hold; a preservation's 60 days are a minimum, not a response time."""
    registry = load_registry(TEMPLATES_DIR)
    de, nl = Log(DE), Log(NL)
    order, preservation, unsent = MessageId.new(), MessageId.new(), MessageId.new()
    what = {"message_type": "production_order_request",
            "template_id": "sap-art8-production-order", "template_version": "1.0.0"}
    de.add(T0, EventType.ENVELOPE_SENT, order, peer=NL, **what)
    nl.add(T0 + 1_000, EventType.ENVELOPE_RECEIVED, order, peer=DE, **what)
    _request(de, nl, T0)
    de.add(T0, EventType.ENVELOPE_SENT, unsent, peer=NL, **what)
    de.add(T0, EventType.ENVELOPE_SENT, preservation, peer=NL, message_type="x",
           template_id="no-such-template", template_version="9.9.9")
    checks, notes = deadline_checks(_replay(de, nl).result(), registry, now_ms=T0 + 50 * DAY)
    by = {(c.envelope_id, c.name): c for c in checks}
    serve = by[(str(order), "serve_provider")]
    assert (serve.start_ms, serve.due_ms) == (T0 + 1_000, T0 + 1_000 + 45 * DAY)
    assert serve.status.startswith(NOT_IN_LOG) and "the due time has passed" in serve.status
    traffic = by[(str(order), "return_traffic_data")]
    assert traffic.due_ms is None and "provider_service" in traffic.status
    assert "applies only if" in traffic.status
    assert "not received yet" in by[(str(unsent), "serve_provider")].status
    minimum = next(c for c in checks if c.name == "minimum_preservation")
    assert minimum.status.startswith("minimum period")
    assert notes == ["template no-such-template@9.9.9 is not in the template registry: its "
                     "deadlines are unknown"]


@dataclass
class _Template:
    deadlines: tuple[Deadline, ...]


class _Registry:
    def __init__(self, *deadlines: Deadline) -> None:
        self.template = _Template(deadlines)

    def get(self, template_id: str, version: str) -> _Template:
        return self.template


def test_an_extension_runs_from_the_end_of_the_period_it_extends() -> None:
    registry = _Registry(
        Deadline("preservation", "P60D", "EPOC-PR Art. 11(1)", "R"),
        Deadline("extension", "P30D", "EPOC-PR Art. 11(1)", "R", starts="expiry",
                 extends="preservation"),
        Deadline("sending_limit", "PT48H", "basis", "U", kind="maximum", starts="sending"))
    de, nl = Log(DE), Log(NL)
    _request(de, nl, T0)
    checks, _ = deadline_checks(_replay(de, nl).result(), registry,  # type: ignore[arg-type]
                                now_ms=T0)
    preservation, extension, sending = checks
    assert preservation.due_ms == T0 + 5_000 + 60 * DAY
    assert extension.start_ms == preservation.due_ms
    assert extension.due_ms == T0 + 5_000 + 90 * DAY
    assert extension.status.startswith("only if the preservation period is extended")
    assert sending.due_ms == T0 + 48 * 3_600_000 and "due in 2 d 00 h" in sending.status


def test_volume_chart_fills_quiet_days_and_caps_bar_width() -> None:
    de, nl = Log(DE), Log(NL)
    _request(de, nl, T0)
    _request(de, nl, T0 + 3 * DAY)
    chart = volume_chart(_replay(de, nl).result())
    assert [label for _, label in chart.x_labels] == [
        "2026-01-01", "2026-01-02", "2026-01-03", "2026-01-04"]
    assert len(chart.bars) == 4 and all(b.width <= MAX_BAR_WIDTH for b in chart.bars)
    assert [n for _, n in chart.legend] == [DE, NL]
    assert all(chart.top <= b.y <= chart.top + chart.plot_height for b in chart.bars)


def _hostile_history() -> tuple[object, MessageId]:
    de, nl = Log(DE), Log(NL)
    mid = MessageId.new()
    de.add(T0, EventType.ENVELOPE_SENT, mid, peer=NL, message_type=HOSTILE,
           template_id=HOSTILE, template_version="1", case_id=HOSTILE, citations=(HOSTILE,),
           actor=f"person:{HOSTILE}")
    de.add(T0 + 1, EventType.DELIVERY_RETRY, mid, peer=NL, reason=HOSTILE)
    nl.add(T0 + 2, EventType.ENVELOPE_RECEIVED, mid, peer=DE)
    nl.add(T0 + 3, EventType.MESSAGE_CONSULTED, mid, peer=DE, actor="person:\u202eecilop",
           justification=HOSTILE)
    nl.add(T0 + 4, EventType.ENVELOPE_REJECTED, peer=HOSTILE, reason=HOSTILE)
    replay = Replay()
    for record in [*de.records, *nl.records]:
        replay.feed(record)
    return replay.result(), mid


class _Elements(HTMLParser):
    """Every element and attribute a browser would build from the document."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: set[str] = set()
        self.attributes: set[str] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.add(tag)
        self.attributes |= {name for name, _ in attrs}


def test_hostile_record_fields_are_rendered_as_text() -> None:
    history, mid = _hostile_history()
    finding = Finding("CHAIN_BROKEN", DE, 7, "store:node.db#7", f"detail {HOSTILE}")
    html = render_report(history, Verification(5, 0, (finding,)),  # type: ignore[arg-type]
                         registry=None, generated_at_ms=T0 + DAY, sources=[HOSTILE])
    parsed = _Elements()
    parsed.feed(html)
    assert not parsed.tags & {"script", "img", "iframe", "object", "a", "link"}
    assert parsed.tags <= {"html", "head", "meta", "title", "style", "body", "header", "div",
                           "span", "section", "h1", "h2", "h3", "dl", "dt", "dd", "table",
                           "caption", "thead", "tbody", "tr", "th", "td", "p", "svg", "line",
                           "text", "rect", "b", "br", "footer"}
    assert not {a for a in parsed.attributes if a.startswith("on")}
    assert not parsed.attributes & {"src", "href", "xlink:href", "style", "action"}
    assert html.count("&lt;script&gt;alert(1)&lt;/script&gt;") >= 8
    assert "\u202e" not in html and "person:\\u202eecilop" in html
    assert "content=\"default-src 'none'; style-src 'unsafe-inline'" in html
    assert "<td>CHAIN_BROKEN</td><td>DE-BFJ</td><td class=\"num\">7</td>" in html
    assert "1 finding: the log cannot be fully trusted" in html
    assert str(mid) in html and "<svg" in html


def test_an_empty_log_renders() -> None:
    html = render_report(Replay().result(), Verification(0, 0, ()), registry=None,
                         generated_at_ms=T0)
    assert "Verified: no findings" in html
    assert "No message was sent or received in the log." in html
    assert html.rstrip().endswith("</html>")
