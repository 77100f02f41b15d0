"""`rogatory audit replay` and `rogatory audit report` over real node stores.

Two nodes exchange requests over mutual TLS; the first request goes to a node that is
still down and is retried until it comes up; operators consult what they received,
one of them under a name and justification crafted to inject markup into the report.
The auditor then replays the logs and renders the report from the stores alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import sqlite3
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from broker.model import MessageId
from broker.services.mailbox import Mailbox
from nodes import cli
from tests.harness import Federation, make_federation, nodes, send, wait_delivered

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

INJECTED = "<script>alert(1)</script>"
ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Exchanged:
    fed: Federation
    retried: MessageId        # DE-BFJ -> US-OIA while US-OIA was down
    answered: MessageId       # DE-BFJ -> US-OIA, with an attachment
    reverse: MessageId        # US-OIA -> DE-BFJ

    def stores(self) -> list[str]:
        return [str(self.fed.configs[n].data_dir / "node.db") for n in ("DE-BFJ", "US-OIA")]

    def config(self) -> str:
        return str(self.fed.root / "DE-BFJ" / "node.toml")


async def _exchange(fed: Federation) -> Exchanged:
    async with nodes(fed, "DE-BFJ") as n:
        de = n["DE-BFJ"]
        assert de.ctx is not None
        retried = await send(de, "US-OIA", "preservation")
        for _ in range(500):
            state = await de.ctx.store.outbox_state(retried)
            if state and state[1] >= 1:
                break
            await asyncio.sleep(0.02)
        async with nodes(fed, "US-OIA") as m:
            us = m["US-OIA"]
            assert us.ctx is not None
            assert await wait_delivered(de, retried) == "delivered"
            answered = await send(de, "US-OIA", "mla_request", attachments=[b"exhibit" * 100])
            assert await wait_delivered(de, answered) == "delivered"
            reverse = await send(us, "DE-BFJ", "preservation")
            assert await wait_delivered(us, reverse) == "delivered"
            await Mailbox(us.ctx).show(retried, actor="person:officer-us",
                                       justification="case-2024-17")
            await Mailbox(us.ctx).show(answered, actor=f"person:{INJECTED}",
                                       justification=INJECTED)
            async for _ in await Mailbox(us.ctx).read_attachment(
                    answered, 0, actor="person:officer-us", justification="case-2024-17"):
                pass
    return Exchanged(fed, retried, answered, reverse)


@pytest.fixture(scope="module")
def exchanged(tmp_path_factory: pytest.TempPathFactory) -> Exchanged:
    fed = make_federation(tmp_path_factory.mktemp("report") / "fed",
                          ("DE-BFJ:central_authority", "US-OIA:central_authority"))
    return asyncio.run(_exchange(fed))


def _replay(x: Exchanged, capsys: pytest.CaptureFixture[str], *extra: str
            ) -> tuple[int, list[dict[str, object]]]:
    argv = ["audit", "replay", "--config", x.config(), "--json", *extra]
    for store in x.stores():
        argv += ["--store", store]
    code = cli.main(argv)
    return code, json.loads(capsys.readouterr().out)


def test_replay_rebuilds_each_lifecycle(exchanged: Exchanged,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    code, lifecycles = _replay(exchanged, capsys)
    assert code == 0
    by_id = {lc["envelope_id"]: lc for lc in lifecycles}
    assert set(by_id) == {str(exchanged.retried), str(exchanged.answered),
                          str(exchanged.reverse)}
    for lc in lifecycles:
        assert lc["status"] == "delivered"
        sent, received, delivered = lc["sent_ms"], lc["received_ms"], lc["delivered_ms"]
        assert isinstance(sent, int) and isinstance(received, int)
        assert isinstance(delivered, int)
        assert sent <= received <= delivered       # one host, one clock
    retried = by_id[str(exchanged.retried)]
    assert (retried["sender"], retried["recipient"]) == ("DE-BFJ", "US-OIA")
    assert retried["message_type"] == "preservation"
    assert retried["template_id"] == "coe-art29-preservation"
    assert isinstance(retried["retries"], int) and retried["retries"] >= 1
    assert all(str(r).startswith("TRANSPORT_") for r in retried["retry_reasons"])  # type: ignore[attr-defined]
    assert [(c["actor"], c["node_id"], c["what"], c["justification"])
            for c in retried["consultations"]] == [  # type: ignore[attr-defined]
        ("person:officer-us", "US-OIA", "message", "case-2024-17")]
    answered = by_id[str(exchanged.answered)]
    assert answered["retries"] == 0
    assert [(c["actor"], c["what"]) for c in answered["consultations"]] == [  # type: ignore[attr-defined]
        (f"person:{INJECTED}", "message"), ("person:officer-us", "attachment")]
    reverse = by_id[str(exchanged.reverse)]
    assert (reverse["sender"], reverse["recipient"]) == ("US-OIA", "DE-BFJ")


def test_replay_of_one_envelope_as_text(exchanged: Exchanged,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    code, lifecycles = _replay(exchanged, capsys, "--envelope", str(exchanged.retried))
    assert code == 0
    assert [lc["envelope_id"] for lc in lifecycles] == [str(exchanged.retried)]
    argv = ["audit", "replay", "--config", exchanged.config(),
            "--envelope", str(exchanged.retried)]
    for store in exchanged.stores():
        argv += ["--store", store]
    assert cli.main(argv) == 0
    text = capsys.readouterr().out
    assert "1 request(s); verified: no findings" in text
    assert f"{exchanged.retried}  DELIVERED" in text
    assert "DE-BFJ -> US-OIA: preservation (coe-art29-preservation@1.0.0)" in text
    assert "message consulted by person:officer-us at US-OIA" in text


def test_report_shows_timelines_chart_deadlines_and_escapes_record_fields(
        exchanged: Exchanged, tmp_path: Path) -> None:
    out = tmp_path / "report.html"
    argv = [sys.executable, "-m", "nodes.cli", "audit", "report", "--config",
            exchanged.config(), "--html", str(out)]
    for store in exchanged.stores():
        argv += ["--store", store]
    run = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=60,
                         check=False)
    assert run.returncode == 0, run.stderr
    assert "3 request(s) in 3 case(s)" in run.stdout
    html = out.read_text()
    assert html.startswith("<!DOCTYPE html>")
    assert "Verified: no findings" in html and 'id="findings"' in html
    assert '<section id="timelines">' in html
    for mid in (exchanged.retried, exchanged.answered, exchanged.reverse):
        assert str(mid) in html
    assert "<svg" in html and "<rect" in html and "DE-BFJ" in html
    assert "<script" not in html and "src=" not in html and "href=" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    # the preservation request's Art. 29(7) minimum period is shown with its basis
    assert "minimum_preservation" in html and "Art. 29(7)" in html


def test_report_names_the_finding_in_a_tampered_log(exchanged: Exchanged,
                                                    tmp_path: Path) -> None:
    """Timeline: an insider deletes record 5 of US-OIA's journal; the report still
    renders, and its findings name US-OIA and the missing sequence."""
    stores = []
    for original in map(Path, exchanged.stores()):
        copy = tmp_path / original.parent.parent.name
        copy.mkdir()
        shutil.copy(original, copy / "node.db")
        stores.append(copy / "node.db")
    with contextlib.closing(sqlite3.connect(stores[1])) as db:
        db.execute("DELETE FROM audit WHERE seq = 5")
        db.commit()
    out = tmp_path / "report.html"
    argv = ["audit", "report", "--config", exchanged.config(), "--html", str(out)]
    for store in stores:
        argv += ["--store", str(store)]
    assert cli.main(argv) == 1
    html = out.read_text()
    assert "MISSING_RECORDS" in html
    assert "<td>US-OIA</td><td class=\"num\">5</td>" in html
    assert "the log cannot be fully trusted" in html
