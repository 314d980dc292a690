"""A real S3-compatible server for tests: moto's server as a subprocess on a loopback port.

In a process of its own, so the server's memory never counts in the tests' measurements and
other processes (real Mailroom servers) can share its buckets. ``tests/conftest.py`` registers
this module as a plugin (``pytest_plugins``), so the session fixture ``s3_server`` is everywhere::

    def test_something(s3_server, settings):
        s3_settings = s3_server.settings(settings)  # payload_store=s3 on a fresh bucket
        store = s3_server.store()  # an S3PayloadStore on a fresh bucket
        s3_server.keys(store.bucket), s3_server.open_uploads(store.bucket)  # what is in it

``s3_server.env()`` holds the AWS variables a Mailroom subprocess needs to reach it; the
fixture sets them in this process for the session too. ``running_s3_server()`` is the same
server as a context manager, for use outside pytest.
"""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config
from tests.support.server import free_port, read_tail

from mailroom.settings import S3_MIN_PART_SIZE, PayloadBackend, Settings
from mailroom.storage.payloads.s3 import S3PayloadStore, client_for

REGION = "us-east-1"
STARTUP_TIMEOUT = 20.0
_buckets = itertools.count(1)


@dataclass
class S3Server:
    endpoint_url: str
    region: str = REGION
    access_key: str = "testing"
    secret_key: str = "testing"
    _client: Any = field(default=None, repr=False)
    _store_client: Any = field(default=None, repr=False)

    def env(self) -> dict[str, str]:
        """AWS variables for a process that should reach this server (merge into its environ)."""
        return {
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            "AWS_DEFAULT_REGION": self.region,
            "AWS_EC2_METADATA_DISABLED": "true",
        }

    @property
    def client(self) -> Any:
        """A boto3 client for inspecting buckets from tests."""
        if self._client is None:
            self._client = boto3.session.Session().client(
                "s3",
                endpoint_url=self.endpoint_url,
                region_name=self.region,
                aws_access_key_id=self.access_key,
                aws_secret_access_key=self.secret_key,
                config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 2}),
            )
        return self._client

    def new_bucket(self) -> str:
        name = f"mailroom-test-{os.getpid()}-{next(_buckets)}"
        self.client.create_bucket(Bucket=name)
        return name

    def settings(self, base: Settings, *, bucket: str = "", prefix: str = "", **changes: Any) -> Settings:
        """``base`` switched to the S3 payload store on ``bucket`` (a fresh one by default)."""
        return base.replace(
            payload_store=PayloadBackend.S3,
            s3_bucket=bucket or self.new_bucket(),
            s3_prefix=prefix,
            s3_endpoint_url=self.endpoint_url,
            s3_region=self.region,
            s3_part_size=changes.pop("s3_part_size", S3_MIN_PART_SIZE),
            **changes,
        )

    def store(
        self, *, bucket: str = "", prefix: str = "", part_size: int = S3_MIN_PART_SIZE
    ) -> S3PayloadStore:
        """An ``S3PayloadStore`` on ``bucket`` (a fresh one by default), with a client configured
        as the server configures its own (made once: a boto3 client takes ~0.3 s to build)."""
        bucket = bucket or self.new_bucket()
        if self._store_client is None:
            self._store_client = client_for(self.settings(Settings(), bucket=bucket))
        return S3PayloadStore(self._store_client, bucket, prefix=prefix, part_size=part_size)

    def keys(self, bucket: str) -> list[str]:
        pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=bucket)
        return [item["Key"] for page in pages for item in page.get("Contents", [])]

    def open_uploads(self, bucket: str) -> list[str]:
        """Keys of multipart uploads begun and neither completed nor aborted."""
        return [
            upload["Key"] for upload in self.client.list_multipart_uploads(Bucket=bucket).get("Uploads", [])
        ]


@contextmanager
def running_s3_server() -> Iterator[S3Server]:
    """Start moto's server on a free loopback port; stop it on exit."""
    with tempfile.TemporaryDirectory(prefix="moto-") as folder:
        log_path = Path(folder) / "moto.log"
        for _attempt in range(3):  # the free port may be taken before the server binds it
            port = free_port()
            with open(log_path, "wb") as log:
                process = subprocess.Popen(
                    [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env={**os.environ, "MOTO_ALLOW_NONEXISTENT_REGION": "true"},
                )
            try:
                if _wait_until_up(process, f"http://127.0.0.1:{port}"):
                    yield S3Server(endpoint_url=f"http://127.0.0.1:{port}")
                    return
            finally:
                process.terminate()
                try:
                    process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
        raise RuntimeError(f"moto server did not start:\n{read_tail(log_path)}")


def _wait_until_up(process: subprocess.Popen[bytes], url: str) -> bool:
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return False
        try:
            with urllib.request.urlopen(f"{url}/moto-api/data.json", timeout=1):
                return True
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(0.05)
    return False


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    """moto's S3 server for the session, with the AWS variables set to reach it."""
    with running_s3_server() as server, pytest.MonkeyPatch.context() as patch:
        for name, value in server.env().items():
            patch.setenv(name, value)
        patch.delenv("AWS_PROFILE", raising=False)  # the variables above, not a profile's
        yield server
