"""SQLite (WAL) node store: messages, outbox, inbox, receipts and the audit journal."""

from broker.adapters.sqlite.blobs import BlobStore, BlobWriter
from broker.adapters.sqlite.store import NodeStore
from broker.model.stored import OutboxItem, StoredAttachment, StoredMessage

__all__ = ["BlobStore", "BlobWriter", "NodeStore", "OutboxItem", "StoredAttachment",
           "StoredMessage"]
