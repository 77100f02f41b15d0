"""Kill -9 the sender between commit and delivery, or the receiver mid-stream: after
restarts, each request is delivered exactly once in effect (receiver dedup)."""

from __future__ import annotations

import contextlib
import hashlib
import sqlite3
from pathlib import Path

import pytest

from nodes.operator_client import OperatorClient
from tests.e2e.procs import NodeProcess, processes, wait_for
from tests.harness import DECLARED, Federation, make_federation, skeleton

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]


def _inbox_count(fed: Federation, node_id: str) -> int:
    with contextlib.closing(sqlite3.connect(fed.configs[node_id].data_dir / "node.db")) as db:
        return int(db.execute("SELECT COUNT(*) FROM messages WHERE direction = 'in'"
                              ).fetchone()[0])


def _verified(client: OperatorClient, mid: str) -> bool:
    try:
        return bool(client.receipt(mid).verified)
    except Exception:
        return False


def test_sender_killed_between_commit_and_delivery(tmp_path: Path) -> None:
    """Timeline: DE-BFJ commits a request while US-OIA is down; DE-BFJ is killed -9;
    US-OIA comes up; DE-BFJ restarts, finds the request in its outbox and delivers it."""
    fed = make_federation(tmp_path / "fed")
    de = NodeProcess(fed.configs["DE-BFJ"], tmp_path)
    us = NodeProcess(fed.configs["US-OIA"], tmp_path)
    with processes(de, us):
        de.start()
        with OperatorClient(fed.configs["DE-BFJ"], subject="dora") as client:
            draft = client.send(to="US-OIA", message_type="mla_request",
                                payload=skeleton("mla_request"), attachments=[],
                                declarations=DECLARED, draft=True).request.request_id
        with OperatorClient(fed.configs["DE-BFJ"], subject="albert") as client:
            mid = client.approve(draft).message.message_id
        de.kill()
        us.start()
        de.start()
        with OperatorClient(fed.configs["DE-BFJ"]) as client:
            wait_for(lambda: _verified(client, mid), timeout_s=60)
        assert _inbox_count(fed, "US-OIA") == 1


def test_receiver_killed_mid_stream(tmp_path: Path) -> None:
    """Timeline: DE-BFJ streams a 256 MiB attachment; US-OIA is killed -9 once part of it
    is on its disk; US-OIA restarts (the partial blob is discarded); DE-BFJ retries; the
    attachment arrives once, intact."""
    fed = make_federation(tmp_path / "fed")
    evidence = tmp_path / "evidence.bin"
    with open(evidence, "wb") as fh:
        for i in range(256):
            fh.write(hashlib.sha256(str(i).encode()).digest() * (1 << 15))
    digest = hashlib.sha256(evidence.read_bytes()).hexdigest()
    de = NodeProcess(fed.configs["DE-BFJ"], tmp_path)
    us = NodeProcess(fed.configs["US-OIA"], tmp_path)
    tmp_blobs = fed.configs["US-OIA"].data_dir / "blobs" / "tmp"
    with processes(de, us):
        de.start()
        us.start()
        with OperatorClient(fed.configs["DE-BFJ"], subject="dora") as client:
            draft = client.send(to="US-OIA", message_type="mla_request",
                                payload=skeleton("mla_request"), attachments=[evidence],
                                declarations=DECLARED, draft=True).request.request_id
        with OperatorClient(fed.configs["DE-BFJ"], subject="albert") as client:
            mid = client.approve(draft).message.message_id

        def partial() -> bool:
            return any(p.stat().st_size > (8 << 20) for p in tmp_blobs.glob("*.part"))

        wait_for(partial, timeout_s=60, interval=0.01)
        us.kill()
        killed_parts = set(tmp_blobs.glob("*.part"))
        assert killed_parts and _inbox_count(fed, "US-OIA") == 0
        us.start()
        # the partial blob of the killed stream is discarded at start (the sender's
        # retry may already be writing a new one)
        assert not killed_parts & set(tmp_blobs.glob("*.part"))
        with OperatorClient(fed.configs["DE-BFJ"]) as client:
            wait_for(lambda: _verified(client, mid), timeout_s=120)
        assert _inbox_count(fed, "US-OIA") == 1
        with OperatorClient(fed.configs["US-OIA"], justification="case 17") as client:
            got = hashlib.sha256()
            for piece in client.read_attachment(mid, 0):
                got.update(piece)
        assert got.hexdigest() == digest
