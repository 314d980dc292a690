"""Picks the payload backend from settings."""

from __future__ import annotations

from mailroom.settings import PayloadBackend, Settings, SettingsError
from mailroom.storage.payloads.base import PayloadStore
from mailroom.storage.payloads.filesystem import FilesystemPayloadStore


def create_payload_store(settings: Settings) -> PayloadStore:
    if settings.payload_store == PayloadBackend.S3:
        return _s3_store(settings)
    return FilesystemPayloadStore(settings.data_dir / "payloads", direct_io=settings.payload_direct_io)


def _s3_store(settings: Settings) -> PayloadStore:
    # imported only here: a plain install (without the `s3` extra) has no boto3
    try:
        from mailroom.storage.payloads.s3 import S3PayloadStore
    except ModuleNotFoundError as exc:
        if exc.name not in {"boto3", "botocore"}:
            raise
        raise SettingsError(
            "MAILROOM_PAYLOAD_STORE=s3 needs boto3: install Mailroom with the s3 extra "
            "(in the checkout: pip install -c constraints.txt -e '.[s3]')"
        ) from None
    return S3PayloadStore.from_settings(settings)
