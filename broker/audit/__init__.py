"""Audit: the event catalogue and record building. Storage backends live in adapters."""

from broker.audit.events import AuditEvent, EventType

__all__ = ["AuditEvent", "EventType"]
