"""Words the rendered forms use around the template's own labels, in en / fr / de.

Template labels come from the template files; this module holds only the fixed
headings of a rendered message, the spelled-out verification tags, and the wording of
values (yes/no, durations, enum codes). fr/de are working translations.
"""

from __future__ import annotations

import re
from typing import Any

from broker.templating.model import DEFAULT_LANGUAGE

_UI: dict[str, dict[str, str]] = {
    "legal_basis": {"en": "Legal basis", "fr": "Base juridique", "de": "Rechtsgrundlage"},
    "deadlines": {
        "en": "Deadlines started by this message",
        "fr": "Délais déclenchés par ce message",
        "de": "Durch diese Nachricht ausgelöste Fristen",
    },
    "no_deadlines": {
        "en": "No legal deadline is carried by this template.",
        "fr": "Ce modèle ne comporte aucun délai légal.",
        "de": "Diese Vorlage enthält keine gesetzliche Frist.",
    },
    "verification": {"en": "Verification", "fr": "Vérification", "de": "Überprüfung"},
    "verification_note": {
        "en": "The payload SHA-256 is the digest of the exact payload bytes covered by the "
        "envelope signature; compare it with the signed message before relying on this copy.",
        "fr": "Le SHA-256 du contenu est l'empreinte des octets exacts couverts par la signature "
        "de l'enveloppe ; comparez-le au message signé avant de vous fier à cette copie.",
        "de": "Die SHA-256-Prüfsumme des Inhalts bezieht sich auf genau die Bytes, die die "
        "Signatur des Umschlags abdeckt; vor Verwendung dieser Kopie mit der signierten "
        "Nachricht abgleichen.",
    },
    "provenance": {"en": "Provenance", "fr": "Provenance", "de": "Herkunft"},
    "data_categories": {
        "en": "Personal-data categories present",
        "fr": "Catégories de données à caractère personnel présentes",
        "de": "Enthaltene Kategorien personenbezogener Daten",
    },
    "message_id": {"en": "Message id", "fr": "Identifiant du message", "de": "Nachrichtenkennung"},
    "template": {"en": "Template", "fr": "Modèle", "de": "Vorlage"},
    "sender": {"en": "Sender", "fr": "Expéditeur", "de": "Absender"},
    "recipient": {"en": "Recipient", "fr": "Destinataire", "de": "Empfänger"},
    "created": {"en": "Created", "fr": "Créé le", "de": "Erstellt am"},
    "signing_key": {"en": "Signing key", "fr": "Clé de signature", "de": "Signaturschlüssel"},
    "signature_fingerprint": {
        "en": "Signature fingerprint",
        "fr": "Empreinte de la signature",
        "de": "Fingerabdruck der Signatur",
    },
    "payload_sha256": {
        "en": "Payload SHA-256",
        "fr": "SHA-256 du contenu",
        "de": "SHA-256 des Inhalts",
    },
    "unsigned_draft": {
        "en": "none (unsigned draft)",
        "fr": "aucune (projet non signé)",
        "de": "keine (unsignierter Entwurf)",
    },
    "unsigned_notice": {
        "en": "UNSIGNED DRAFT: this copy is not bound to a signed message.",
        "fr": "PROJET NON SIGNÉ : cette copie n'est liée à aucun message signé.",
        "de": "UNSIGNIERTER ENTWURF: Diese Kopie ist an keine signierte Nachricht gebunden.",
    },
    "translation_notice": {
        "en": "",
        "fr": "Les libellés sont une traduction de travail, pas une version linguistique "
        "officielle du formulaire.",
        "de": "Die Bezeichnungen sind eine Arbeitsübersetzung, keine amtliche Sprachfassung "
        "des Formulars.",
    },
    "not_completed": {"en": "(not completed)", "fr": "(non renseigné)", "de": "(nicht ausgefüllt)"},
    "page": {"en": "Page", "fr": "Page", "de": "Seite"},
    "yes": {"en": "Yes", "fr": "Oui", "de": "Ja"},
    "no": {"en": "No", "fr": "Non", "de": "Nein"},
    "kind_minimum": {"en": "at least", "fr": "au moins", "de": "mindestens"},
    "kind_maximum": {"en": "at most", "fr": "au plus", "de": "höchstens"},
}

VERIFICATION_TAGS: dict[str, dict[str, str]] = {
    "V": {
        "en": "V: read in the cited source",
        "fr": "V : lu dans la source citée",
        "de": "V: in der zitierten Quelle gelesen",
    },
    "R": {
        "en": "R: recalled, wording to be checked",
        "fr": "R : de mémoire, libellé à vérifier",
        "de": "R: aus dem Gedächtnis, Wortlaut zu prüfen",
    },
    "U": {
        "en": "U: uncertain, to be verified",
        "fr": "U : incertain, à vérifier",
        "de": "U: unsicher, zu prüfen",
    },
}

_STARTS: dict[str, dict[str, str]] = {
    "receipt": {
        "en": "from receipt of this message",
        "fr": "à compter de la réception de ce message",
        "de": "ab Eingang dieser Nachricht",
    },
    "request_receipt": {
        "en": "from receipt of the request answered (met by sending this message)",
        "fr": "à compter de la réception de la demande (respecté par l'envoi de ce message)",
        "de": "ab Eingang des beantworteten Ersuchens (durch Absenden dieser Nachricht gewahrt)",
    },
    "sending": {"en": "from sending", "fr": "à compter de l'envoi", "de": "ab Absendung"},
    "notification_receipt": {
        "en": "from receipt of the notification",
        "fr": "à compter de la réception de la notification",
        "de": "ab Eingang der Unterrichtung",
    },
    "recognition_decision": {
        "en": "from the decision on recognition",
        "fr": "à compter de la décision de reconnaissance",
        "de": "ab der Entscheidung über die Anerkennung",
    },
    "provider_service": {
        "en": "from service of the order on the provider",
        "fr": "à compter de la signification de l'injonction au fournisseur",
        "de": "ab Zustellung der Anordnung an den Diensteanbieter",
    },
    "expiry": {"en": "after the end of", "fr": "après l'expiration de", "de": "nach Ablauf von"},
}

_UNITS: dict[str, dict[str, tuple[str, str]]] = {
    "Y": {"en": ("year", "years"), "fr": ("an", "ans"), "de": ("Jahr", "Jahre")},
    "M": {"en": ("month", "months"), "fr": ("mois", "mois"), "de": ("Monat", "Monate")},
    "W": {"en": ("week", "weeks"), "fr": ("semaine", "semaines"), "de": ("Woche", "Wochen")},
    "D": {"en": ("day", "days"), "fr": ("jour", "jours"), "de": ("Tag", "Tage")},
    "H": {"en": ("hour", "hours"), "fr": ("heure", "heures"), "de": ("Stunde", "Stunden")},
    "TM": {"en": ("minute", "minutes"), "fr": ("minute", "minutes"), "de": ("Minute", "Minuten")},
    "S": {
        "en": ("second", "seconds"),
        "fr": ("seconde", "secondes"),
        "de": ("Sekunde", "Sekunden"),
    },
}
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)([YMWDHS])")
_CODE = re.compile(r"^[a-z0-9]+(?:_[a-z0-9]+)+$")


def _pick(table: dict[str, str], lang: str) -> str:
    return table.get(lang) or table[DEFAULT_LANGUAGE]


def ui(key: str, lang: str) -> str:
    """A fixed heading or phrase in ``lang`` (English when not translated)."""
    return _pick(_UI[key], lang)


def duration_text(value: str, lang: str) -> str:
    """``P60D`` -> ``60 days``, ``PT8H`` -> ``8 hours`` (the ISO text when it does not parse)."""
    if not value.startswith("P"):
        return value
    date_part, _, time_part = value[1:].partition("T")
    words = []
    for part, in_time in ((date_part, False), (time_part, True)):
        for amount, unit in _DURATION_PART.findall(part):
            key = "TM" if in_time and unit == "M" else unit
            singular, plural = _UNITS[key].get(lang, _UNITS[key][DEFAULT_LANGUAGE])
            words.append(f"{amount} {singular if amount == '1' else plural}")
    return " ".join(words) or value


def starts_text(starts: str, extends: str, lang: str) -> str:
    """When a deadline's clock starts, in words."""
    table = _STARTS.get(starts)
    if table is None:
        return starts.replace("_", " ")
    text = _pick(table, lang)
    return f"{text} {extends}" if starts == "expiry" and extends else text


def value_text(kind: str, value: Any, lang: str) -> str:
    """A scalar payload value as printed: yes/no, codes with spaces, text as given.

    Text values are returned unchanged; the renderers escape or draw them literally.
    """
    if isinstance(value, bool):
        return ui("yes" if value else "no", lang)
    if kind == "multi_enum" and isinstance(value, list):
        return "; ".join(value_text("enum", v, lang) for v in value)
    if kind == "enum" and isinstance(value, str) and _CODE.match(value):
        return value.replace("_", " ")
    if kind == "duration" and isinstance(value, str):
        words = duration_text(value, lang)
        return value if words == value else f"{value} ({words})"
    return value if isinstance(value, str) else json_text(value)


def json_text(value: Any) -> str:
    """Any other JSON value as compact text."""
    if value is None:
        return "-"
    return str(value)
