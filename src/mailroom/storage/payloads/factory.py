"""Picks the payload backend from settings."""

from __future__ import annotations

from mailroom.settings import Settings
from mailroom.storage.payloads.base import PayloadStore
from mailroom.storage.payloads.filesystem import FilesystemPayloadStore


def create_payload_store(settings: Settings) -> PayloadStore:
    return FilesystemPayloadStore(settings.data_dir / "payloads")
