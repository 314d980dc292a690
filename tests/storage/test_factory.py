"""Choosing the payload backend from settings, and the S3 settings' checks."""

from __future__ import annotations

import sys

import pytest

from mailroom.settings import PayloadBackend, SettingsError, load_settings
from mailroom.storage.payloads.factory import create_payload_store
from mailroom.storage.payloads.filesystem import FilesystemPayloadStore

S3_ENV = {"MAILROOM_PAYLOAD_STORE": "s3", "MAILROOM_S3_BUCKET": "payloads"}


def test_files_in_the_data_directory_by_default(tmp_path):
    store = create_payload_store(load_settings({}, data_dir=tmp_path))
    assert isinstance(store, FilesystemPayloadStore)
    assert store.root == (tmp_path / "payloads").resolve()


def test_s3_store_from_the_environment(tmp_path, monkeypatch):
    from mailroom.storage.payloads.s3 import S3PayloadStore

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    settings = load_settings(
        {
            **S3_ENV,
            "MAILROOM_S3_PREFIX": "exchange",
            "MAILROOM_S3_ENDPOINT_URL": "http://127.0.0.1:9",
            "MAILROOM_S3_REGION": "eu-west-2",
            "MAILROOM_S3_PART_SIZE": str(16 * 1024 * 1024),
        },
        data_dir=tmp_path,
    )
    assert settings.payload_store is PayloadBackend.S3
    store = create_payload_store(settings)  # no request is made until it is used
    assert isinstance(store, S3PayloadStore)
    assert (store.bucket, store.prefix, store.part_size) == ("payloads", "exchange/", 16 * 1024 * 1024)
    assert store.client.meta.endpoint_url == "http://127.0.0.1:9"
    assert store.client.meta.region_name == "eu-west-2"


def test_without_boto3_the_s3_backend_is_a_settings_error(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "boto3", None)  # as if not installed
    monkeypatch.delitem(sys.modules, "mailroom.storage.payloads.s3", raising=False)
    with pytest.raises(SettingsError, match=r"pip install -c constraints\.txt -e '\.\[s3\]'"):
        create_payload_store(load_settings(S3_ENV, data_dir=tmp_path))
    # and the default backend never needs it
    assert isinstance(create_payload_store(load_settings({}, data_dir=tmp_path)), FilesystemPayloadStore)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"MAILROOM_PAYLOAD_STORE": "ftp"}, "MAILROOM_PAYLOAD_STORE"),
        ({"MAILROOM_PAYLOAD_STORE": "s3"}, "needs s3_bucket"),
        ({**S3_ENV, "MAILROOM_S3_PART_SIZE": str(5 * 1024 * 1024 - 1)}, "s3_part_size"),
        ({**S3_ENV, "MAILROOM_S3_PART_SIZE": str(6 * 1024**3)}, "s3_part_size"),
        (
            {
                **S3_ENV,
                "MAILROOM_S3_PART_SIZE": str(5 * 1024**2),
                "MAILROOM_MAX_CHUNK_BYTES": str(50_001 * 1024**2),
            },
            "10000 parts",
        ),
    ],
)
def test_unusable_s3_settings_are_refused(env, message):
    with pytest.raises(SettingsError, match=message):
        load_settings(env)


def test_s3_settings_are_ignored_with_the_filesystem_backend():
    assert load_settings({"MAILROOM_S3_PART_SIZE": "1"}).payload_store is PayloadBackend.FILESYSTEM
