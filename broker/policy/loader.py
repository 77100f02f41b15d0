"""Read the policy directory and build a :class:`PolicySet`.

Layout (``policy/``): ``schema.cedarschema``, ``vocabulary.yaml``,
``facts/jurisdictions.yaml``, ``facts/instruments.yaml`` and ``packs/**/*.cedar``.
:func:`load_policy_set` is the only function of the engine that touches the filesystem;
:func:`build_policy_set` does everything else from the file contents, so tests (and the
mutation check) can build policy sets in memory.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Mapping
from pathlib import Path

import cedarpy

from broker.errors import ConfigError
from broker.policy.engine import PolicySet
from broker.policy.facts import INSTRUMENTS_FILE, JURISDICTIONS_FILE, Facts, parse_facts
from broker.policy.packs import Rule, parse_pack
from broker.policy.vocabulary import VOCABULARY_FILE, Vocabulary, parse_vocabulary
from broker.policy.yamlsrc import POLICY_CONFIG, fail, parse_yaml

SCHEMA_FILE = "schema.cedarschema"
PACKS_DIR = "packs"
PACK_SUFFIX = ".cedar"
MAX_FILE_BYTES = 1 << 20
REQUIRED = (SCHEMA_FILE, VOCABULARY_FILE, JURISDICTIONS_FILE, INSTRUMENTS_FILE)


def policy_set_hash(files: Mapping[str, str]) -> str:
    """SHA-256 (hex) over every loaded file: sorted relative path, NUL, length, NUL, bytes."""
    h = hashlib.sha256()
    for name in sorted(files):
        data = files[name].encode()
        h.update(name.encode() + b"\0" + str(len(data)).encode() + b"\0" + data)
    return h.hexdigest()


def build_policy_set(files: Mapping[str, str]) -> PolicySet:
    """Parse and validate everything once; ``files`` maps relative paths to their text.

    Raises:
        ConfigError: ``<file>:<line>: <problem>`` for the first broken file, including a
            pack that does not parse or does not validate against the schema.
    """
    for name in REQUIRED:
        if name not in files:
            fail(name, 0, "required file is missing")
    schema = _schema(files[SCHEMA_FILE])
    vocabulary, facts = _data(files[SCHEMA_FILE], files[VOCABULARY_FILE],
                              files[JURISDICTIONS_FILE], files[INSTRUMENTS_FILE])
    packs = sorted(n for n in files if n.startswith(PACKS_DIR + "/") and n.endswith(PACK_SUFFIX))
    if not packs:
        fail(PACKS_DIR, 0, "no policy packs: an empty rule set would deny everything")
    rules: list[Rule] = []
    seen: dict[str, Rule] = {}
    for name in packs:
        for rule in parse_pack(name, files[name], schema, vocabulary):
            if rule.policy_id in seen:
                first = seen[rule.policy_id]
                fail(name, rule.line, f"@id {rule.policy_id} is already used at "
                     f"{first.file}:{first.line}")
            seen[rule.policy_id] = rule
            rules.append(rule)
    used = {n: files[n] for n in (*REQUIRED, *packs)}
    return PolicySet(schema=schema, vocabulary=vocabulary, facts=facts, rules=rules,
                     files=used, digest=policy_set_hash(used))


def _schema(text: str) -> cedarpy.Schema:
    try:
        return cedarpy.Schema.from_str(text)
    except ValueError as e:
        fail(SCHEMA_FILE, 1, f"Cedar schema: {e}")


@functools.lru_cache(maxsize=8)
def _data(schema_text: str, vocabulary_text: str, jurisdictions_text: str,
          instruments_text: str) -> tuple[Vocabulary, Facts]:
    """Parse the vocabulary and the facts and check them against the schema.

    Memoised on the texts (the results are immutable), so rebuilding a policy set whose
    data files did not change - as the mutation check does - parses only the packs.
    """
    schema = _schema(schema_text)
    vocabulary = parse_vocabulary(parse_yaml(VOCABULARY_FILE, vocabulary_text))
    facts = parse_facts(parse_yaml(JURISDICTIONS_FILE, jurisdictions_text),
                        parse_yaml(INSTRUMENTS_FILE, instruments_text))
    probe = PolicySet(schema=schema, vocabulary=vocabulary, facts=facts, rules=(), files={},
                      digest="")
    for day in (facts.as_of, *facts.change_dates):
        try:
            probe.entities_at(day)
        except ValueError as e:
            fail(JURISDICTIONS_FILE, 1, f"facts do not fit the schema on {day}: {e}")
    _check_declarations(schema, vocabulary)
    return vocabulary, facts


def _check_declarations(schema: cedarpy.Schema, vocabulary: Vocabulary) -> None:
    """A request declaring everything in the vocabulary must fit the schema's `Declared`."""
    sample = {n: (True if d.type == "bool" else 1 if d.type == "long"
                  else d.values[0] if d.type == "enum" else "x")
              for n, d in vocabulary.declarations.items()}
    context = {"legal_basis": "x", "instrument": {"__entity": {"type": "Instrument", "id": "x"}},
               "template": "x", "template_allows_basis": True, "direction": "request",
               "categories": [], "personal_data": True, "regime": "LED", "third_country": True,
               "sender_roles": [], "recipient_roles": [], "sender_competent": True,
               "recipient_competent": True, "recipient_private": False,
               "carried_obligations": [], "unknown_obligations": False, "facts_stale": False,
               "declared": sample}
    entities = cedarpy.Entities.from_json_str(
        '[{"uid": {"type": "Instrument", "id": "x"}, "attrs": {"family": "mla", '
        '"in_force": true}, "parents": []}, {"uid": {"type": "Jurisdiction", "id": "XX"}, '
        '"attrs": {"code": "XX", "eu": true, "led_area": true, "gdpr_area": true, '
        '"eio": true, "e_evidence": true, "budapest": true, "second_protocol": true, '
        '"c108": true, "led_adequacy": true, "gdpr_adequacy": "none", '
        '"death_penalty": "unknown", "abolitionist": false}, "parents": []}]')
    result = cedarpy.is_authorized(
        {"principal": 'Jurisdiction::"XX"', "action": 'Action::"send"',
         "resource": 'Jurisdiction::"XX"', "context": context},
        "permit (principal, action, resource);", entities, schema=schema)
    if result.diagnostics.errors:
        fail(VOCABULARY_FILE, 1, "declarations do not match the `Declared` type of "
             f"{SCHEMA_FILE}: {'; '.join(result.diagnostics.errors)}")


def load_policy_set(root: Path) -> PolicySet:
    """Read ``root`` (the ``policy/`` directory) and build the policy set.

    Raises:
        ConfigError: a required file is missing or unreadable, or a file is broken (the
            message names the file under ``root`` and the line).
    """
    files: dict[str, str] = {}
    try:
        paths = [root / n for n in REQUIRED]
        paths += sorted((root / PACKS_DIR).rglob("*" + PACK_SUFFIX))
        for path in paths:
            if path.stat().st_size > MAX_FILE_BYTES:
                raise ConfigError(f"{path}: larger than {MAX_FILE_BYTES} bytes",
                                  code=POLICY_CONFIG)
            files[path.relative_to(root).as_posix()] = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"cannot read the policy set in {root}: {e}",
                          code=POLICY_CONFIG) from e
    try:
        return build_policy_set(files)
    except ConfigError as e:
        raise ConfigError(f"{root}/{e.message}", code=e.code) from e
