"""Jurisdiction and instrument facts, as of an evaluation date.

Parsed from ``policy/facts/jurisdictions.yaml`` and ``policy/facts/instruments.yaml``.
Facts change only on the dates the files name (ratifications, entry into force, the end
of an adequacy decision), so the dates split time into epochs within which every fact
is constant; the engine builds the Cedar entities once per epoch.
"""

from __future__ import annotations

import bisect
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from broker.policy.yamlsrc import Located, choice, day, fail, flag, mapping, names, text

JURISDICTIONS_FILE = "facts/jurisdictions.yaml"
INSTRUMENTS_FILE = "facts/instruments.yaml"

BUDAPEST = ("party", "signatory", "invited", "none")
SECOND_PROTOCOL = ("party", "signatory", "none")
C108 = ("party", "none")
GDPR_ADEQUACY = ("eu_member", "eea_member", "full", "partial", "none")
LED_ADEQUACY = ("eu_member", "schengen_associated_bound", "adequate", "none")
DEATH_PENALTY = ("abolished", "abolished_for_ordinary_crimes", "abolitionist_in_practice",
                 "retentionist", "unknown")
ABOLITIONIST = ("abolished", "abolished_for_ordinary_crimes")
FAMILIES = ("eio", "e_evidence", "budapest", "second_protocol", "mla", "provider")
DIRECTIONS = ("request", "evidence", "notice")


@dataclass(frozen=True)
class Status:
    """A membership status that holds from ``since`` (always, when ``since`` is None)."""

    value: str
    since: date | None
    verification: str

    def at(self, d: date, before: str) -> str:
        return self.value if self.since is None or d >= self.since else before


@dataclass(frozen=True)
class Jurisdiction:
    code: str
    name: str
    eu: bool
    schengen_associated: bool
    eea: bool
    eio: bool
    e_evidence: bool
    budapest: Status
    second_protocol: Status
    second_protocol_signed: date | None
    convention_108: Status
    gdpr_adequacy: str
    led_adequacy: str
    led_from: date | None
    led_until: date | None
    death_penalty: Status

    def change_dates(self) -> list[date]:
        found = [self.budapest.since, self.second_protocol.since, self.second_protocol_signed,
                 self.led_from, self.led_until + timedelta(days=1) if self.led_until else None]
        return [d for d in found if d is not None]

    def attrs_at(self, d: date) -> dict[str, Any]:
        """The Cedar attributes of this State on day ``d`` (see policy/schema.cedarschema)."""
        signed = self.second_protocol_signed is not None and d >= self.second_protocol_signed
        led_ok = (self.led_adequacy == "adequate"
                  and (self.led_from is None or d >= self.led_from)
                  and (self.led_until is None or d <= self.led_until))
        return {
            "code": self.code,
            "eu": self.eu,
            "led_area": self.eu or self.schengen_associated,
            "gdpr_area": self.eu or self.eea,
            "eio": self.eio,
            "e_evidence": self.e_evidence,
            "budapest": self.budapest.at(d, "none") == "party",
            "second_protocol": (self.second_protocol.at(d, "signatory" if signed else "none")
                                == "party"),
            "c108": self.convention_108.at(d, "none") == "party",
            "led_adequacy": led_ok,
            "gdpr_adequacy": self.gdpr_adequacy,
            "death_penalty": self.death_penalty.value,
            "abolitionist": self.death_penalty.value in ABOLITIONIST,
        }

    def summary_at(self, d: date) -> str:
        """One line a lawyer reads: the facts used, each with its verification tag."""
        a = self.attrs_at(d)
        area = ("EU" if self.eu else "Schengen-associated" if self.schengen_associated
                else "third country")
        return (f"{self.code} {self.name}: {area}; EIO {'yes' if a['eio'] else 'no'}; "
                f"e-Evidence {'yes' if a['e_evidence'] else 'no'}; "
                f"Budapest {'Party' if a['budapest'] else 'not a Party'} "
                f"[{self.budapest.verification}]; "
                f"2AP {'Party' if a['second_protocol'] else 'not a Party'} "
                f"[{self.second_protocol.verification}]; "
                f"Convention 108 {'Party' if a['c108'] else 'not a Party'} "
                f"[{self.convention_108.verification}]; "
                f"LED adequacy {'yes' if a['led_adequacy'] else 'no'}; "
                f"GDPR adequacy {self.gdpr_adequacy}; "
                f"death penalty {self.death_penalty.value} [{self.death_penalty.verification}]")


@dataclass(frozen=True)
class Instrument:
    code: str
    family: str
    name: str
    citation: str
    applies_from: date | None
    verification: str

    def in_force(self, d: date) -> bool:
        return self.applies_from is not None and d >= self.applies_from


@dataclass(frozen=True)
class TemplateFacts:
    id: str
    direction: str
    legal_bases: frozenset[str] | None  # None: any legal basis
    default_basis: str
    basis_from_payload: Mapping[str, Any]
    declared_from_payload: Mapping[str, str]

    def allows(self, legal_basis: str) -> bool:
        return self.legal_bases is None or legal_basis in self.legal_bases


@dataclass(frozen=True)
class Facts:
    as_of: date
    review_by: date
    jurisdictions: Mapping[str, Jurisdiction]
    instruments: Mapping[str, Instrument]
    templates: Mapping[str, TemplateFacts]
    message_types: Mapping[str, str]
    change_dates: tuple[date, ...]

    def epoch(self, d: date) -> int:
        """Index of the period, between two change dates, that contains ``d``."""
        return bisect.bisect_right(self.change_dates, d)


# -- parsing -------------------------------------------------------------------------------

def _status(src: str, obj: Located, key: str, allowed: tuple[str, ...]) -> Status:
    m = mapping(src, obj.get(key), key, obj.line_of(key))
    return Status(choice(src, m, "status", allowed), day(src, m, "since"),
                  text(src, m, "verification"))


def _jurisdiction(src: str, code: str, e: Located) -> Jurisdiction:
    if len(code) != 2 or not code.isascii() or not code.isupper():
        fail(src, e.line, f"{code!r} is not an ISO 3166-1 alpha-2 code")
    sa = e.get("schengen_associated")
    schengen = False
    if sa is not None:
        schengen = flag(src, mapping(src, sa, "schengen_associated", e.line_of(
            "schengen_associated")), "status")
    adequacy = mapping(src, e.get("adequacy"), "adequacy", e.line_of("adequacy"))
    sap = mapping(src, e.get("second_protocol"), "second_protocol",
                  e.line_of("second_protocol"))
    return Jurisdiction(
        code=code, name=text(src, e, "name"), eu=flag(src, e, "eu"),
        schengen_associated=schengen, eea=flag(src, e, "eea", default=False),
        eio=flag(src, e, "eio"), e_evidence=flag(src, e, "e_evidence"),
        budapest=_status(src, e, "budapest", BUDAPEST),
        second_protocol=_status(src, e, "second_protocol", SECOND_PROTOCOL),
        second_protocol_signed=day(src, sap, "signed"),
        convention_108=_status(src, e, "convention_108", C108),
        gdpr_adequacy=choice(src, adequacy, "gdpr", GDPR_ADEQUACY),
        led_adequacy=choice(src, adequacy, "led", LED_ADEQUACY),
        led_from=day(src, adequacy, "led_from"), led_until=day(src, adequacy, "led_until"),
        death_penalty=_status(src, e, "death_penalty", DEATH_PENALTY))


def _instrument(src: str, code: str, e: Located) -> Instrument:
    return Instrument(code=code, family=choice(src, e, "family", FAMILIES),
                      name=text(src, e, "name"), citation=text(src, e, "citation"),
                      applies_from=day(src, e, "applies_from"),
                      verification=text(src, e, "verification"))


def _template(src: str, tid: str, e: Located, instruments: Mapping[str, Instrument]
              ) -> TemplateFacts:
    raw = e.get("legal_bases")
    bases: frozenset[str] | None
    if raw == "any":
        bases = None
    else:
        bases = frozenset(names(src, e, "legal_bases"))
        for b in bases:
            if b not in instruments:
                fail(src, e.line_of("legal_bases"), f"template {tid}: unknown legal basis {b!r}")
    default = text(src, e, "default_basis")
    if default not in instruments or (bases is not None and default not in bases):
        fail(src, e.line_of("default_basis"), f"template {tid}: bad default_basis {default!r}")
    from_payload = e.get("basis_from_payload") or {}
    if from_payload:
        m = mapping(src, from_payload, "basis_from_payload", e.line_of("basis_from_payload"))
        text(src, m, "field")
        for value in mapping(src, m.get("map"), "map", m.line_of("map")).values():
            if value not in instruments:
                fail(src, m.line_of("map"), f"template {tid}: unknown legal basis {value!r}")
    declared = e.get("declared_from_payload") or {}
    if declared:
        mapping(src, declared, "declared_from_payload", e.line_of("declared_from_payload"))
    return TemplateFacts(id=tid, direction=choice(src, e, "direction", DIRECTIONS),
                         legal_bases=bases, default_basis=default,
                         basis_from_payload=from_payload,
                         declared_from_payload={str(k): str(v) for k, v in declared.items()})


def parse_facts(jurisdictions: Any, instruments: Any) -> Facts:
    """Build :class:`Facts` from the two parsed YAML documents.

    Raises:
        ConfigError: naming ``file:line`` of the first fact that is missing or malformed.
    """
    js = mapping(JURISDICTIONS_FILE, jurisdictions, "document", 1)
    ins = mapping(INSTRUMENTS_FILE, instruments, "document", 1)
    as_of = day(JURISDICTIONS_FILE, js, "as_of")
    review_by = day(JURISDICTIONS_FILE, js, "review_by")
    if as_of is None or review_by is None or review_by < as_of:
        fail(JURISDICTIONS_FILE, js.line, "as_of and review_by (not before as_of) are required")
    jmap = mapping(JURISDICTIONS_FILE, js.get("jurisdictions"), "jurisdictions",
                   js.line_of("jurisdictions"))
    states = {code: _jurisdiction(JURISDICTIONS_FILE, code,
                                  mapping(JURISDICTIONS_FILE, e, code, jmap.line_of(code)))
              for code, e in jmap.items()}
    imap = mapping(INSTRUMENTS_FILE, ins.get("legal_bases"), "legal_bases",
                   ins.line_of("legal_bases"))
    instr = {code: _instrument(INSTRUMENTS_FILE, code,
                               mapping(INSTRUMENTS_FILE, e, code, imap.line_of(code)))
             for code, e in imap.items()}
    tmap = mapping(INSTRUMENTS_FILE, ins.get("templates"), "templates", ins.line_of("templates"))
    templates = {tid: _template(INSTRUMENTS_FILE, tid,
                                mapping(INSTRUMENTS_FILE, e, tid, tmap.line_of(tid)), instr)
                 for tid, e in tmap.items()}
    mt = ins.get("message_types") or {}
    message_types = {str(k): choice(INSTRUMENTS_FILE, mapping(INSTRUMENTS_FILE, mt, "x"), k,
                                    DIRECTIONS) for k in mt}
    dates = {d for j in states.values() for d in j.change_dates()}
    dates |= {i.applies_from for i in instr.values() if i.applies_from is not None}
    return Facts(as_of=as_of, review_by=review_by, jurisdictions=states, instruments=instr,
                 templates=templates, message_types=message_types,
                 change_dates=tuple(sorted(dates)))
