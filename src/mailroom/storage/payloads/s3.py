"""Payloads as objects in an S3-compatible bucket (AWS S3, MinIO, Ceph, moto).

A payload that fits in one part is one PutObject; a larger one is a multipart upload that holds
at most about one part in memory. Either way the object appears whole or not at all: a failed
upload is aborted, and one cut off by a crash (which cannot abort) is aborted by the sweep
through ``remove_stale_uploads``. boto3 is imported here only, and this module is imported only
when the S3 backend is chosen (``factory.py``), so a plain install never needs it.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import threading
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, cast

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from mailroom.ids import is_generated_id
from mailroom.settings import S3_MIN_PART_SIZE, Settings
from mailroom.storage.payloads.base import (
    InvalidKey,
    PayloadMissing,
    StoredPayload,
    check_key,
    content_disposition,
)

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_s3.type_defs import CompletedPartTypeDef, ObjectIdentifierTypeDef

log = logging.getLogger(__name__)

READ_SIZE = 256 * 1024
#: S3's most parts per upload.
MAX_PARTS = 10_000
_MISSING = {"NoSuchKey", "404", "NotFound"}


def client_for(settings: Settings) -> S3Client:
    """One thread-safe client per store; credentials from the usual AWS variables or chain."""
    endpoint = settings.s3_endpoint_url or None
    config = Config(
        region_name=settings.s3_region or None,
        # SigV4 for presigned URLs too (botocore presigns with SigV2 unless told): AWS refuses
        # SigV2 in most regions, and MinIO always
        signature_version="s3v4",
        retries={"max_attempts": 5, "mode": "standard"},
        connect_timeout=10,
        read_timeout=60,
        # uploads (max_concurrent_uploads) plus downloads run at once, each in a thread holding
        # one connection; connections are opened only when needed
        max_pool_connections=256,
        # S3-compatible servers (MinIO, Ceph, moto) are usually reached by path, not by DNS name
        s3={"addressing_style": "path"} if endpoint else {},
    )
    # a session of its own: boto3's default session is module state and not thread-safe
    return boto3.session.Session().client("s3", endpoint_url=endpoint, config=config)


class S3PayloadStore:
    def __init__(self, client: S3Client, bucket: str, *, prefix: str = "", part_size: int) -> None:
        if part_size < S3_MIN_PART_SIZE:
            raise ValueError(f"part_size must be at least {S3_MIN_PART_SIZE} bytes")
        self.client = client
        self.bucket = bucket
        # "mailroom", "/mailroom/" and "mailroom/" all mean objects under "mailroom/"
        self.prefix = f"{prefix.strip('/')}/" if prefix.strip("/") else ""
        self.part_size = part_size
        # uploads this process is streaming now: never "stale", whatever time the server reports
        self._active = _ActiveUploads()

    @classmethod
    def from_settings(cls, settings: Settings) -> S3PayloadStore:
        return cls(
            client_for(settings),
            settings.s3_bucket,
            prefix=settings.s3_prefix,
            part_size=settings.s3_part_size,
        )

    def _object_key(self, key: str) -> str:
        return self.prefix + check_key(key)

    def _message_prefix(self, message_id: str) -> str:
        if not is_generated_id(message_id):
            raise InvalidKey(message_id)
        return f"{self.prefix}{message_id}/"

    def put(self, key: str, data: Iterable[bytes]) -> StoredPayload:
        upload = _Upload(self.client, self.bucket, self._object_key(key), self._active)
        digest = hashlib.sha256()
        size = 0
        buffer = bytearray()
        try:
            for piece in data:
                digest.update(piece)
                size += len(piece)
                view = memoryview(piece)
                while view:
                    # a full part is sent only once more bytes arrive, so a payload of exactly
                    # one part is still a single PutObject
                    if len(buffer) == self.part_size:
                        upload.send_part(buffer)
                        buffer = bytearray()
                    room = self.part_size - len(buffer)
                    buffer += view[:room]
                    view = view[room:]
            if upload.started:
                upload.send_part(buffer)
                upload.complete()
            else:
                self.client.put_object(Bucket=self.bucket, Key=upload.key, Body=_body(buffer))
        except BaseException:
            upload.abort()
            raise
        return StoredPayload(size=size, sha256=digest.hexdigest())

    def open(self, key: str) -> Iterator[bytes]:
        try:
            response = self.client.get_object(Bucket=self.bucket, Key=self._object_key(key))
        except ClientError as exc:
            if _code(exc) in _MISSING:
                raise PayloadMissing(key) from None
            raise
        return _stream(response["Body"])

    def open_range(self, key: str, start: int, end: int | None) -> Iterator[bytes]:
        if end is not None and end <= start:
            return iter(())
        wanted = f"bytes={start}-{'' if end is None else end - 1}"
        try:
            response = self.client.get_object(Bucket=self.bucket, Key=self._object_key(key), Range=wanted)
        except ClientError as exc:
            if _code(exc) in _MISSING:
                raise PayloadMissing(key) from None
            if _code(exc) == "InvalidRange":  # at or past the end: nothing there
                return iter(())
            raise
        return _stream(response["Body"])

    def presign_get(self, key: str, *, expires_in: int, file_name: str, content_type: str) -> str | None:
        """A presigned GET of the object, named and typed for the browser that follows it."""
        params = {
            "Bucket": self.bucket,
            "Key": self._object_key(key),
            "ResponseContentDisposition": content_disposition(file_name),
            "ResponseContentType": content_type,
        }
        url: str = self.client.generate_presigned_url("get_object", Params=params, ExpiresIn=expires_in)
        return url

    def delete(self, key: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=self._object_key(key))

    def delete_message(self, message_id: str) -> None:
        prefix = self._message_prefix(message_id)
        for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix):
            keys: list[ObjectIdentifierTypeDef] = [{"Key": item["Key"]} for item in page.get("Contents", [])]
            if not keys:
                continue
            response = self.client.delete_objects(Bucket=self.bucket, Delete={"Objects": keys, "Quiet": True})
            failed = [error for error in response.get("Errors", []) if error.get("Code") not in _MISSING]
            if failed:  # the purge must not mark the message purged with objects left behind
                raise OSError(f"could not delete {len(failed)} payloads of {message_id}: {failed[0]}")

    def message_ids(self) -> Iterator[str]:
        pages = self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=self.prefix, Delimiter="/"
        )
        for page in pages:
            for common in page.get("CommonPrefixes", []):
                name = common.get("Prefix", "")[len(self.prefix) :].rstrip("/")
                if is_generated_id(name):
                    yield name

    def last_written(self, message_id: str) -> datetime | None:
        prefix = self._message_prefix(message_id)
        latest: datetime | None = None
        for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix):
            for item in page.get("Contents", []):
                modified = item["LastModified"].astimezone(UTC)
                latest = modified if latest is None or modified > latest else latest
        return latest

    def remove_stale_uploads(self, older_than: timedelta) -> int:
        """Abort multipart uploads of our keys begun before ``now - older_than``.

        Parts of an unfinished upload are stored (and billed) but never visible; an upload
        aborted here was cut off by a crash, as a failing ``put`` aborts its own.
        """
        cutoff = datetime.now(UTC) - older_than
        removed = 0
        pages = self.client.get_paginator("list_multipart_uploads").paginate(
            Bucket=self.bucket, Prefix=self.prefix
        )
        for page in pages:
            for upload in page.get("Uploads", []):
                key, upload_id = upload.get("Key", ""), upload.get("UploadId", "")
                if (
                    not _is_ours(key[len(self.prefix) :])
                    or upload["Initiated"] >= cutoff
                    or upload_id in self._active
                ):
                    continue
                try:
                    self.client.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id)
                except ClientError as exc:
                    if _code(exc) != "NoSuchUpload":  # finished or aborted meanwhile
                        raise
                    continue
                removed += 1
        return removed


class _ActiveUploads:
    def __init__(self) -> None:
        self._ids: set[str] = set()
        self._lock = threading.Lock()

    def add(self, upload_id: str) -> None:
        with self._lock:
            self._ids.add(upload_id)

    def discard(self, upload_id: str) -> None:
        with self._lock:
            self._ids.discard(upload_id)

    def __contains__(self, upload_id: object) -> bool:
        with self._lock:
            return upload_id in self._ids


class _Upload:
    """One multipart upload, begun lazily by its first part."""

    def __init__(self, client: S3Client, bucket: str, key: str, active: _ActiveUploads) -> None:
        self._client = client
        self._bucket = bucket
        self._active = active
        self.key = key
        self._upload_id = ""
        self._parts: list[CompletedPartTypeDef] = []

    @property
    def started(self) -> bool:
        return bool(self._upload_id)

    def send_part(self, body: bytearray) -> None:
        if not self._upload_id:
            created = self._client.create_multipart_upload(Bucket=self._bucket, Key=self.key)
            self._upload_id = created["UploadId"]
            self._active.add(self._upload_id)
        number = len(self._parts) + 1
        if number > MAX_PARTS:
            raise ValueError(f"payload needs more than {MAX_PARTS} parts: raise MAILROOM_S3_PART_SIZE")
        sent = self._client.upload_part(
            Bucket=self._bucket, Key=self.key, UploadId=self._upload_id, PartNumber=number, Body=_body(body)
        )
        self._parts.append({"ETag": sent["ETag"], "PartNumber": number})

    def complete(self) -> None:
        self._client.complete_multipart_upload(
            Bucket=self._bucket,
            Key=self.key,
            UploadId=self._upload_id,
            MultipartUpload={"Parts": self._parts},
        )
        self._active.discard(self._upload_id)
        self._upload_id = ""  # done: nothing left to abort

    def abort(self) -> None:
        """Best effort: an upload that cannot be aborted now is aborted later by the sweep."""
        if not self._upload_id:
            return
        try:
            self._client.abort_multipart_upload(Bucket=self._bucket, Key=self.key, UploadId=self._upload_id)
        except (BotoCoreError, ClientError):
            log.warning("could not abort upload of %s; the sweep will", self.key, exc_info=True)
        self._active.discard(self._upload_id)
        self._upload_id = ""


def _body(buffer: bytearray) -> bytes:
    # botocore sends a bytearray as it is (its stubs say bytes): no copy of a part in memory
    return cast(bytes, buffer)


def _stream(body: Any) -> Iterator[bytes]:
    with contextlib.closing(body):
        yield from body.iter_chunks(READ_SIZE)


def _is_ours(key: str) -> bool:
    try:
        check_key(key)
    except InvalidKey:
        return False
    return True


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))
