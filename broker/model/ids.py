"""Identifiers: node ids (`<ISO 3166 alpha-2>-<agency>`) and message (envelope) ids."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

from broker.errors import ConfigError, MalformedMessage

NodeId = str
_NODE_ID = re.compile(r"^[A-Z]{2}-[A-Za-z0-9]{2,16}$")
MESSAGE_ID_SIZE = 16


def validate_node_id(node_id: str) -> NodeId:
    """Return `node_id` if it has the form CC-AGENCY, else raise ConfigError."""
    if not _NODE_ID.fullmatch(node_id):
        raise ConfigError(f"invalid node id {node_id!r}: expected e.g. DE-BFJ")
    return node_id


def is_node_id(node_id: str) -> bool:
    return bool(_NODE_ID.fullmatch(node_id))


@dataclass(frozen=True, order=True)
class MessageId:
    """An envelope id: 16 random bytes, shown as 32 lowercase hex digits."""

    raw: bytes

    def __post_init__(self) -> None:
        if len(self.raw) != MESSAGE_ID_SIZE:
            raise MalformedMessage("an envelope id has 16 bytes")

    @classmethod
    def new(cls) -> MessageId:
        return cls(os.urandom(MESSAGE_ID_SIZE))

    @classmethod
    def parse(cls, text: str) -> MessageId:
        try:
            raw = bytes.fromhex(text)
        except ValueError as e:
            raise MalformedMessage("a message id is 32 hex digits") from e
        return cls(raw)

    def __str__(self) -> str:
        return self.raw.hex()
