"""Payload bytes, behind a narrow interface chosen by settings."""

from mailroom.storage.payloads.base import PayloadMissing, PayloadStore, StoredPayload, chunk_key

__all__ = ["PayloadMissing", "PayloadStore", "StoredPayload", "chunk_key"]
