"""The ~2 KiB preservation request used by the `small` scenario and the crypto recipes.

It is the preservation template's own skeleton with its free-text fields filled in with
plausible prose (not lorem ipsum, not repeated bytes), so JSON parsing, template
validation and compression-free crypto see a realistic request. It must still validate.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

from broker.templating import load_registry

TEMPLATES = Path(__file__).resolve().parent.parent / "templates"
TARGET_BYTES = 2048

_FACTS = (
    "Between 3 and 11 January 2026 a regional logistics company received invoices that "
    "imitated those of its fuel supplier, with altered payment details; three transfers "
    "totalling EUR 184,500 went to an account emptied within hours. The messages came from "
    "a web-mail account created on 28 December 2025 and reached from the IP address below. "
)
_RELATIONSHIP = (
    "The IP address was used to log in to the web-mail account immediately before each "
    "fraudulent invoice was sent; the subscriber and traffic data will identify the person "
    "who controlled the connection at those times. "
)
_NECESSITY = (
    "The access provider keeps connection logs for 90 days only; the first relevant "
    "session falls out of that window on 28 March 2026, and the suspects are known to "
    "rotate connections. "
)
_CUSTODIAN = (
    "Example Access Networks B.V., law-enforcement liaison desk, Postbus 1234, 1000 AB "
    "Amsterdam; requests by e-mail to lea-requests@example.net, reference the account id. "
)


@lru_cache(maxsize=1)
def preservation_payload(target: int = TARGET_BYTES) -> bytes:
    """The skeleton, padded with the texts above until the JSON is about `target` bytes."""
    template = load_registry(TEMPLATES).default_for_message_type("preservation")
    doc = template.skeleton()
    doc["summary_of_facts"] = _FACTS.strip()
    doc["relationship_to_offence"] = _RELATIONSHIP.strip()
    doc["necessity_of_preservation"] = _NECESSITY.strip()
    doc["data_to_preserve"][0]["value"] = "198.51.100.23"
    encoded = json.dumps(doc).encode()
    if len(encoded) < target - 40:
        # Fill the remainder with the custodian details (optional free text), cut at a word.
        room = target - len(encoded) - len(', "custodian": ""')
        doc["custodian"] = (_CUSTODIAN * 4)[:room].rsplit(" ", 1)[0]
        encoded = json.dumps(doc).encode()
    template.validate(json.loads(encoded))
    return encoded


def template_ids() -> tuple[str, str]:
    template = load_registry(TEMPLATES).default_for_message_type("preservation")
    return template.id, template.version
