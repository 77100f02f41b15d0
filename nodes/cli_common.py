"""What the `rogatory` command modules share: the operator client, output, arguments."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from google.protobuf.json_format import MessageToDict
from google.protobuf.message import Message

from broker.errors import RogatoryError
from nodes.config import load_config
from nodes.operator_client import OperatorClient


def when(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M:%SZ") if ms else "-"


def as_dict(msg: Message) -> dict[str, Any]:
    return MessageToDict(msg, preserving_proto_field_name=True,
                         always_print_fields_with_no_presence=True)


def emit(args: argparse.Namespace, data: dict[str, Any], text: Callable[[], str]) -> None:
    if args.json:
        print(json.dumps(data, indent=2, sort_keys=True))
    else:
        print(text())


def client(args: argparse.Namespace) -> OperatorClient:
    """An operator client for the node of --config (or ROGATORY_CONFIG); --as names the
    person a development token is minted for (production uses the agency's issuer)."""
    path = args.config or os.environ.get("ROGATORY_CONFIG")
    if not path:
        raise RogatoryError("no node config: pass --config or set ROGATORY_CONFIG",
                            code="USAGE")
    return OperatorClient(load_config(Path(path)),
                          subject=getattr(args, "as_subject", None) or None,
                          roles=getattr(args, "role", None) or None,
                          justification=getattr(args, "justification", "") or "")


def read_payload(path: str) -> bytes:
    return Path(path).read_bytes() if path != "-" else sys.stdin.buffer.read()


def declarations(items: list[str]) -> dict[str, Any]:
    """KEY=VALUE pairs for the policy engine; true/false become booleans."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise RogatoryError(f"--declare takes KEY=VALUE, not {item!r}", code="USAGE")
        out[key] = {"true": True, "false": False}.get(value, value)
    return out
