"""Settings come from MAILROOM_* variables, are typed, and refuse bad values with a clear error."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from mailroom.settings import AfterAck, SettingsError, load_settings, parse_duration


def test_defaults_follow_the_spec():
    settings = load_settings({})
    assert settings.max_chunk_bytes == 100 * 1024 * 1024
    assert settings.inbox_retention == timedelta(days=5)
    assert settings.payload_retention == timedelta(days=30)
    assert settings.auth_clock_skew == timedelta(hours=2)
    assert settings.auth_single_use_tokens
    assert settings.auth_check_clock
    assert settings.download_after_ack is AfterAck.GONE
    assert not settings.enforce_workflows
    assert not settings.sandbox
    assert settings.header_limits["mex-subject"] == 500
    assert settings.resolved_database_url.endswith("mailroom-data/mailroom.db")


def test_environment_variables_are_typed():
    settings = load_settings(
        {
            "MAILROOM_DATA_DIR": "/srv/mailroom",
            "MAILROOM_PORT": "9000",
            "MAILROOM_SANDBOX": "yes",
            "MAILROOM_INBOX_RETENTION": "36h",
            "MAILROOM_DOWNLOAD_AFTER_ACK": "Allow",
            "MAILROOM_HEADER_LIMITS": "mex-subject=10, MEX-LOCALID=20",
            "MAILROOM_DATABASE_URL": "postgresql://u@h/db",
        }
    )
    assert settings.data_dir == Path("/srv/mailroom")
    assert settings.port == 9000
    assert settings.sandbox is True
    assert settings.inbox_retention == timedelta(hours=36)
    assert settings.download_after_ack is AfterAck.ALLOW
    assert settings.header_limits["mex-subject"] == 10
    assert settings.header_limits["mex-localid"] == 20
    assert settings.header_limits["mex-to"] == 100
    assert settings.resolved_database_url == "postgresql://u@h/db"


def test_explicit_overrides_beat_the_environment():
    assert load_settings({"MAILROOM_PORT": "9000"}, port=9100).port == 9100


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("MAILROOM_PORT", "eighty"),
        ("MAILROOM_SANDBOX", "perhaps"),
        ("MAILROOM_INBOX_RETENTION", "5 weeks"),
        ("MAILROOM_DOWNLOAD_AFTER_ACK", "sometimes"),
        ("MAILROOM_HEADER_LIMITS", "mex-subject"),
        ("MAILROOM_MAX_CHUNK_BYTES", "0"),
        ("MAILROOM_MAX_CHUNKS", "1000000"),  # payload keys hold chunk numbers of up to 6 digits
        ("MAILROOM_SQLITE_SYNCHRONOUS", "MAYBE"),
        ("MAILROOM_DB_POOL_SIZE", "0"),
        ("MAILROOM_DB_MAX_OVERFLOW", "-1"),
        ("MAILROOM_TLS_CERT", "cert.pem"),
        ("MAILROOM_WORKERS", "0"),
        ("MAILROOM_WORKERS", "65"),
        ("MAILROOM_PAYLOAD_DIRECT_IO", "perhaps"),
        ("MAILROOM_MAX_CONCURRENT_UPLOADS", "0"),
    ],
)
def test_bad_values_are_refused_with_the_variable_named(name, value):
    with pytest.raises(SettingsError):
        load_settings({name: value})


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("30", timedelta(seconds=30)),
        ("30s", timedelta(seconds=30)),
        ("15m", timedelta(minutes=15)),
        ("2h", timedelta(hours=2)),
        ("5d", timedelta(days=5)),
        ("0.5s", timedelta(milliseconds=500)),
    ],
)
def test_durations(text, expected):
    assert parse_duration(text) == expected


@pytest.mark.parametrize(
    ("total", "per_mailbox", "share"),
    [("32", "0", 8), ("3", "0", 1), ("1", "0", 1), ("32", "5", 5), ("4", "10", 4)],
)
def test_the_upload_share_of_one_mailbox(total: str, per_mailbox: str, share: int) -> None:
    """MAILROOM_MAX_UPLOADS_PER_MAILBOX: 0 is a quarter of the total (at least 1), never over it."""
    settings = load_settings(
        {"MAILROOM_MAX_CONCURRENT_UPLOADS": total, "MAILROOM_MAX_UPLOADS_PER_MAILBOX": per_mailbox}
    )
    assert settings.uploads_per_mailbox == share


def test_a_negative_upload_share_is_refused() -> None:
    with pytest.raises(SettingsError, match="max_uploads_per_mailbox"):
        load_settings({"MAILROOM_MAX_UPLOADS_PER_MAILBOX": "-1"})


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("127.0.0.1:8463", ("127.0.0.1", 8463)),
        ("[::1]:8463", ("::1", 8463)),
        ("localhost:1", ("localhost", 1)),
        ("0.0.0.0:65535", ("0.0.0.0", 65535)),
    ],
)
def test_admin_listen_is_host_and_port(text, expected):
    settings = load_settings({"MAILROOM_ADMIN_API": "true", "MAILROOM_ADMIN_LISTEN": text})
    assert settings.admin_address == expected


@pytest.mark.parametrize(
    "text", ["8463", "127.0.0.1", "127.0.0.1:0", "127.0.0.1:65536", "::1:8463", "a b:1", ":8463"]
)
def test_admin_listen_that_is_not_host_and_port_is_refused(text):
    with pytest.raises(SettingsError, match="not host:port"):
        load_settings({"MAILROOM_ADMIN_API": "true", "MAILROOM_ADMIN_LISTEN": text})


def test_admin_listen_needs_the_api_and_a_port_of_its_own():
    assert load_settings({}).admin_address is None
    with pytest.raises(SettingsError, match="needs admin_api"):
        load_settings({"MAILROOM_ADMIN_LISTEN": "127.0.0.1:8463"})
    with pytest.raises(SettingsError, match="another port"):
        load_settings({"MAILROOM_ADMIN_API": "true", "MAILROOM_ADMIN_LISTEN": "127.0.0.1:9000"}, port=9000)


def test_links_last_at_most_a_week_on_s3_sigv4s_limit():
    s3 = {"MAILROOM_PAYLOAD_STORE": "s3", "MAILROOM_S3_BUCKET": "b"}
    assert load_settings({**s3, "MAILROOM_LINK_LIFETIME": "7d"}).link_lifetime == timedelta(days=7)
    with pytest.raises(SettingsError, match="link_lifetime is at most 7 days"):
        load_settings({**s3, "MAILROOM_LINK_LIFETIME": "8d"})
    assert load_settings({"MAILROOM_LINK_LIFETIME": "8d"}).link_lifetime == timedelta(days=8)  # files
