"""Loading the policy set: a broken pack or fact file is refused with its file and line."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from broker.errors import ConfigError
from broker.policy import PolicySet, build_policy_set, load_policy_set, policy_set_hash

pytestmark = pytest.mark.unit

POLICY = Path(__file__).resolve().parents[2] / "policy"
BASE: PolicySet = load_policy_set(POLICY)
CORE = "packs/core.cedar"

GOOD = '''
@id("TEST-1")
@source("test")
@verification("E: test")
@effect("deny")
@reason("test")
forbid (principal, action, resource) when { context.facts_stale };
'''


def _line_of_test_policy(text: str) -> int:
    return text.splitlines().index('@id("TEST-1")') + 1


def _build_with(path: str, text: str) -> PolicySet:
    files = dict(BASE.files)
    files[path] = text
    return build_policy_set(files)


def _refused(path: str, text: str) -> str:
    with pytest.raises(ConfigError) as e:
        _build_with(path, text)
    return e.value.message


def test_policy_set_counts_and_hash() -> None:
    assert len(BASE.rules) >= 60
    assert len({r.file for r in BASE.rules}) >= 10
    assert BASE.hash == policy_set_hash(BASE.files)
    changed = dict(BASE.files)
    changed[CORE] += "\n"
    assert policy_set_hash(changed) != BASE.hash


def test_a_good_extra_pack_loads() -> None:
    ps = _build_with("packs/extra.cedar", GOOD)
    assert "TEST-1" in {r.policy_id for r in ps.rules}


def test_syntax_error_names_file_and_line() -> None:
    text = BASE.files[CORE] + GOOD.replace("context.facts_stale", "context.facts_stale +")
    message = _refused(CORE, text)
    assert message.startswith(f"{CORE}:{_line_of_test_policy(text)}: Cedar syntax")


def test_schema_violation_names_file_and_line() -> None:
    text = BASE.files[CORE] + GOOD.replace("context.facts_stale", "context.no_such_fact")
    message = _refused(CORE, text)
    assert message.startswith(f"{CORE}:{_line_of_test_policy(text)}: does not validate")
    assert "no_such_fact" in message


def test_unguarded_optional_declaration_is_refused() -> None:
    text = GOOD.replace("context.facts_stale", "context.declared.emergency")
    assert "does not validate" in _refused("packs/extra.cedar", text)


@pytest.mark.parametrize(("change", "complaint"), [
    (('@source("test")\n', ""), "missing @source"),
    (('@effect("deny")', '@effect("basis")'), "does not fit a forbid policy"),
    (('@effect("deny")', '@effect("needs")'), "@requires is required"),
    (('@verification("E: test")', '@verification("verified")'), "must start with V, R, U"),
    (('@reason("test")', '@reason("test")\n@colour("red")'), "unknown annotation @colour"),
    (('@effect("deny")', '@effect("needs")\n@requires("telepathy")'), "unknown declaration"),
    (('@effect("deny")', '@effect("review")'), "@review (a role name) is required"),
    (('@reason("test")', '@reason("test")\n@obligation("speciality")'), "@obligation belongs"),
    (('@id("TEST-1")', '@id("test one")'), "use capitals"),
])
def test_bad_annotations_are_refused(change: tuple[str, str], complaint: str) -> None:
    text = GOOD.replace(*change)
    message = _refused("packs/extra.cedar", text)
    assert message.startswith("packs/extra.cedar:2:") or message.startswith(
        "packs/extra.cedar:3:")
    assert complaint in message


def test_duplicate_id_names_both_places() -> None:
    first = next(r for r in BASE.rules if r.policy_id == "EIO-01")
    message = _refused("packs/extra.cedar", GOOD.replace("TEST-1", "EIO-01"))
    assert f"{first.file}:{first.line}" in message
    assert "packs/extra.cedar:2" in message
    assert "@id EIO-01 is already used" in message


def test_unknown_obligation_is_refused() -> None:
    text = GOOD.replace('forbid', 'permit').replace('"deny"', '"obligation"').replace(
        '@reason("test")', '@reason("test")\n@obligation("wash_hands")')
    assert "unknown obligation 'wash_hands'" in _refused("packs/extra.cedar", text)


def test_bad_fact_names_file_and_line() -> None:
    text = BASE.files["facts/jurisdictions.yaml"]
    lines = text.splitlines()
    de = lines.index("  DE:")
    dp = next(i for i in range(de, len(lines)) if lines[i].startswith("    death_penalty:"))
    lines[dp] = "    death_penalty: {status: sometimes, verification: U}"
    message = _refused("facts/jurisdictions.yaml", "\n".join(lines) + "\n")
    assert message.startswith(f"facts/jurisdictions.yaml:{dp + 1}:")
    assert "'sometimes' is not one of" in message


def test_unquoted_norway_is_caught() -> None:
    text = BASE.files["facts/jurisdictions.yaml"].replace('  "NO":', "  NO:")
    assert "'False' is not an ISO 3166-1 alpha-2 code" in _refused(
        "facts/jurisdictions.yaml", text)


def test_duplicate_yaml_key_is_refused() -> None:
    text = BASE.files["vocabulary.yaml"].replace(
        "declarations:\n", "declarations:\n  justification: {type: bool, text: x}\n", 1)
    assert "duplicate key 'justification'" in _refused("vocabulary.yaml", text)


def test_declarations_must_match_the_schema() -> None:
    text = BASE.files["vocabulary.yaml"].replace(
        "  emergency:\n    type: bool", "  emergency:\n    type: string")
    assert "do not match the `Declared` type" in _refused("vocabulary.yaml", text)


def test_no_packs_is_refused() -> None:
    files = {k: v for k, v in BASE.files.items() if not k.startswith("packs/")}
    with pytest.raises(ConfigError, match="empty rule set"):
        build_policy_set(files)


def test_load_from_directory_prefixes_the_root(tmp_path: Path) -> None:
    root = tmp_path / "policy"
    shutil.copytree(POLICY, root)
    pack = root / "packs" / "core.cedar"
    pack.write_text(pack.read_text() + "\nforbid (principal, action, resource) when { 1 + };\n")
    with pytest.raises(ConfigError) as e:
        load_policy_set(root)
    assert e.value.message.startswith(f"{root}/packs/core.cedar:")


def test_missing_directory_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read the policy set"):
        load_policy_set(tmp_path / "nowhere")
