"""Typed settings, read once from the environment (``MAILROOM_*``) and passed down.

Every field has a default and help text; ``docs/configuration.md`` documents each one
(a test keeps the two in step). Nothing here is read at import time.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from enum import StrEnum
from pathlib import Path
from typing import Any

ENV_PREFIX = "MAILROOM_"

#: Maximum lengths of MESH request headers (spec §8); overridable per header.
DEFAULT_HEADER_LIMITS: Mapping[str, int] = {
    "mex-to": 100,
    "mex-from": 100,
    "mex-workflowid": 300,
    "mex-chunk-range": 20,
    "mex-subject": 500,
    "mex-localid": 300,
    "mex-partnerid": 500,
    "mex-filename": 300,
    "mex-content-checksum": 100,
    "mex-content-type": 100,
    "mex-content-encrypted": 20,
    "mex-content-compressed": 20,
    "mex-clientversion": 500,
    "mex-osname": 500,
    "mex-osversion": 500,
    "mex-osarchitecture": 500,
    "mex-javaversion": 500,
    "authorization": 1000,
}


#: Payload keys hold chunk numbers of at most six digits (``storage.payloads.base.chunk_key``).
MAX_CHUNKS_LIMIT = 999_999
#: Server processes at most (`workers`).
MAX_WORKERS = 64


class SettingsError(ValueError):
    """A setting has a value that cannot be used."""


class AfterAck(StrEnum):
    """What a download of an acknowledged message gets (spec §10.1)."""

    GONE = "gone"  # 410, as the MESH documentation says
    ALLOW = "allow"  # 200, as mesh-sandbox does


class PayloadBackend(StrEnum):
    """Where payload bytes are kept (``storage.payloads.factory``)."""

    FILESYSTEM = "filesystem"  # files under {data_dir}/payloads
    S3 = "s3"  # objects in an S3-compatible bucket (the `s3` extra)


class HttpLayer(StrEnum):
    """What parses HTTP for ``mailroom serve`` (docs/operations.md#the-http-layer)."""

    MAILROOM = "mailroom"  # web/http_protocol.py on uvicorn's httptools protocol: the tested, fast path
    UVICORN = "uvicorn"  # uvicorn's own h11 protocol: public interfaces only, slower


#: S3's smallest multipart part (all but the last) and largest part.
S3_MIN_PART_SIZE = 5 * 1024 * 1024
S3_MAX_PART_SIZE = 5 * 1024 * 1024 * 1024


def _help(text: str, **kw: Any) -> Any:
    return field(metadata={"help": text}, **kw)


@dataclass(frozen=True)
class Settings:
    data_dir: Path = _help(
        "Directory holding the SQLite database, payload files and generated shared key; made (mode 0700) "
        "only when one of them is kept there.",
        default=Path("mailroom-data"),
    )
    database_url: str = _help(
        "SQLAlchemy URL of the metadata database; empty means `sqlite:///{data_dir}/mailroom.db`.", default=""
    )
    db_pool_size: int = _help(
        "PostgreSQL connections each process keeps open. Every process may open up to "
        "`db_pool_size + db_max_overflow`; keep the sum over all processes (plus CLI runs) "
        "below the server's `max_connections`.",
        default=10,
    )
    db_max_overflow: int = _help(
        "Extra PostgreSQL connections a process may open under load, closed again when returned.",
        default=10,
    )
    shared_key: str = _help(
        "MESH environment shared secret used as the HMAC key of `NHSMESH` tokens. "
        "Empty means a random key generated once into `{data_dir}/shared.key`.",
        default="",
    )
    host: str = _help("Address `mailroom serve` listens on.", default="127.0.0.1")
    port: int = _help("Port `mailroom serve` listens on.", default=8700)
    workers: int = _help(
        "Server processes `mailroom serve` runs, sharing its port. One event loop keeps one core "
        "busy; more processes use more cores (on SQLite they take turns at its write lock).",
        default=1,
    )
    tls_cert: str = _help("PEM certificate (chain) to serve HTTPS with; empty serves plain HTTP.", default="")
    tls_key: str = _help("PEM private key of `tls_cert`.", default="")
    tls_client_ca: str = _help("PEM CA bundle used to verify client certificates (mutual TLS).", default="")
    require_client_cert: bool = _help(
        "Refuse TLS connections without a client certificate signed by "
        "`tls_client_ca` (otherwise the certificate is optional).",
        default=False,
    )
    sandbox: bool = _help(
        "Serve mesh-sandbox's unauthenticated test-control endpoints (`/admin/...`). "
        "Never enable in production.",
        default=False,
    )
    admin_api: bool = _help(
        "Serve the administration API (`/api/invoke/...`, docs/admin-api.md); off, every `/api/` "
        "path is a 404.",
        default=False,
    )
    admin_listen: str = _help(
        "`host:port` (`[::1]:8463` for IPv6) of a listener of its own for the administration API, "
        "as MailStore serves it on port 8463: set, the API is served only there (with the same "
        "TLS settings as the main listener) and every `/api/` path of the main listener is a 404; "
        "empty serves it on the main listener. Needs `admin_api`.",
        default="",
    )
    admin_status_wait_max: timedelta = _help(
        "Longest an administration API `get-status` call waits for a change (`millisecondsTimeout` "
        "is capped to it).",
        default=timedelta(seconds=60),
    )
    admin_max_body_bytes: int = _help(
        "Largest request body the administration API reads; larger gives 413.", default=1024 * 1024
    )
    admin_lockout_failures: int = _help(
        "Failed administrator logins from one client address after which it is refused (429) "
        "without a check until `admin_lockout_time` has passed since its last failure; 0 never "
        "locks out. Counted per server process.",
        default=5,
    )
    admin_lockout_time: timedelta = _help(
        "How long a client stays locked out after too many failed administrator logins.",
        default=timedelta(minutes=5),
    )
    export_dir: str = _help(
        "Directory `ExportMailbox` writes its archives into; a path an administrator names must "
        "resolve inside it (anything else is refused). Empty means `{data_dir}/exports`.",
        default="",
    )
    audit_retention: timedelta = _help(
        "How long entries of the administration API's audit log are kept.", default=timedelta(days=365)
    )
    # -- the JSON messaging API (docs/json-api.md) --
    json_api: bool = _help(
        "Serve the JSON messaging API (MFT Gateway's `/authorize`, `/message/...` and `/files/...`, "
        "D4Science's `/2/...`) beside the MESH API.",
        default=True,
    )
    link_lifetime: timedelta = _help(
        "How long an attachment or receipt link of the JSON messaging API works without a token "
        "(signed by Mailroom, or presigned by the S3 bucket: then at most 7 days).",
        default=timedelta(minutes=10),
    )
    staged_attachment_retention: timedelta = _help(
        "How long an attachment uploaded with `POST /2/attachments` (or by a submit that then "
        "failed) is kept while no message uses it.",
        default=timedelta(days=1),
    )
    max_body_bytes: int = _help(
        "Largest text body of a JSON API message, in bytes of UTF-8.", default=1024 * 1024
    )
    max_recipients: int = _help("Most recipients one JSON API message may have.", default=500)
    max_attachments: int = _help("Most attachments one JSON API message may have.", default=100)
    receipt_key_file: str = _help(
        "PEM file of the private key (RSA or EC) that signs delivery receipts. Empty (with "
        "`receipt_cert_file` empty): an RSA 2048 key and a self-signed certificate made once and "
        "kept in the database, shared by every server process.",
        default="",
    )
    receipt_cert_file: str = _help(
        "PEM file of the certificate that goes with `receipt_key_file` (what senders verify "
        "receipts against).",
        default="",
    )
    receipt_timeout: timedelta = _help(
        "A sent message none of whose recipients has retrieved it within this time is listed in "
        "`/message/outbox/incomplete` (MFT Gateway: sent, but no receipt before the timeout).",
        default=timedelta(days=1),
    )
    env_name: str = _help("Environment name reported by the health endpoints.", default="local")
    build_label: str = _help("Build label reported by the health endpoints.", default="mailroom")
    auth_check_clock: bool = _help(
        "Reject tokens whose timestamp is outside `auth_clock_skew` of server time (real MESH does).",
        default=True,
    )
    auth_clock_skew: timedelta = _help(
        "Allowed distance between token timestamp and server time.", default=timedelta(hours=2)
    )
    mailbox_cache_ttl: timedelta = _help(
        "How long each server process reuses a mailbox row it has read (for authentication and "
        "a send's recipient) before reading it again; 0 disables the cache. A change made through "
        "one process applies there at once; other processes (another server, the `mailroom "
        "mailbox` commands) see it, such as a disabled mailbox or a new password, within this time.",
        default=timedelta(seconds=1),
    )
    api_token_lifetime: timedelta = _help(
        "How long an access token of the JSON messaging API (`POST /authorize`, "
        "`/refresh-session`) is valid; a client refreshes it with its refresh token. An access "
        "token never outlives its login (`api_login_lifetime`).",
        default=timedelta(minutes=15),
    )
    api_login_lifetime: timedelta = _help(
        "Absolute lifetime of a JSON messaging API login: its refresh tokens rotate on every "
        "use, and after this time since the password or key login none is accepted (log in again).",
        default=timedelta(days=30),
    )
    api_revocation_ttl: timedelta = _help(
        "How long each server process trusts what it last read about a login (revoked or not) "
        "when it checks an access token, so that checking one costs no database query; a "
        "revoked login (a spent refresh token reused, its API key revoked, its mailbox's password "
        "changed, its mailbox disabled or removed) stops working in every process within this "
        "time (at once in the process that revoked it). 0 reads it every time.",
        default=timedelta(seconds=5),
    )
    api_lockout_failures: int = _help(
        "Failed JSON messaging API logins (`POST /authorize`) from one client address after "
        "which it is refused (429) without a check until `api_lockout_time` has passed since its "
        "last failure; 0 never locks out. Counted per server process.",
        default=10,
    )
    api_lockout_time: timedelta = _help(
        "How long a client stays locked out after too many failed JSON messaging API logins.",
        default=timedelta(minutes=5),
    )
    auth_single_use_tokens: bool = _help(
        "Reject a token that has been used before (403), as real MESH does.", default=True
    )
    check_mex_from: bool = _help(
        "Reject a send whose `Mex-From` names another mailbox than the token's (417 SEND/07).", default=True
    )
    enforce_workflows: bool = _help(
        "Enforce workflow sender/receiver registrations at send time "
        "(417 SEND/16, SEND/17). Off in mesh-sandbox and by default.",
        default=False,
    )
    download_after_ack: AfterAck = _help(
        "`gone`: downloading an acknowledged message gives 410 (MESH docs); `allow`: 200 (mesh-sandbox).",
        default=AfterAck.GONE,
    )
    compress_downloads: bool = _help(
        "gzip plain stored chunks on the fly for v2 clients that accept gzip "
        "(mesh-sandbox may; real MESH need not).",
        default=False,
    )
    max_chunk_bytes: int = _help(
        "Largest request body (one message or one chunk), in bytes; larger gives 413.",
        default=100 * 1024 * 1024,
    )
    inline_payload_bytes: int = _help(
        "Chunks up to this many bytes, when the request body arrives whole, are kept in the "
        "database row with the message (one durable commit) instead of as a payload file or "
        "object (a file, its directory and the rename each fsynced, or an S3 request); 0 keeps "
        "every chunk in the payload store.",
        default=64 * 1024,
    )
    payload_direct_io: bool = _help(
        "Write and read payload files with `O_DIRECT` (Linux), past the page cache: on the "
        "benchmark machine this took a 1 GiB upload from about 1.7 s of kernel CPU per GiB to "
        "under 0.1 s, and uploads from 125-235 MB/s to 420-510 MB/s. Falls back to ordinary I/O "
        "where the filesystem refuses it. Off, recent uploads are downloaded from memory while "
        "the page cache holds them (a network filesystem, or a disk slower than copying).",
        default=True,
    )
    max_concurrent_uploads: int = _help(
        "Request bodies a server process stores at once (each in a thread of its own); more wait "
        "their turn, unread. Each holds up to about 8 MiB while it streams to a payload file "
        "(4 MiB and one `s3_part_size` part to S3), so this bounds upload memory: 32 x 8 MiB is "
        "about 256 MiB.",
        default=32,
    )
    max_uploads_per_mailbox: int = _help(
        "Of those, how many one mailbox may store at once; its further uploads wait (unread) while "
        "other mailboxes' go ahead, and waiting uploads are served in the order they came. `0`: a "
        "quarter of `max_concurrent_uploads`, at least 1.",
        default=0,
    )
    max_message_bytes: int = _help(
        "Largest total size of a chunked message, in bytes.", default=100 * 1024 * 1024 * 1024
    )
    max_chunks: int = _help(
        "Largest number of chunks a message may declare in `Mex-Chunk-Range` (at most 999999).",
        default=10_000,
    )
    multipart_max_parts: int = _help(
        "Most parts a `multipart/form-data` upload of the JSON messaging API may have (files and "
        "fields together); more gives 413.",
        default=100,
    )
    multipart_max_part_bytes: int = _help(
        "Largest part (one attachment) of a `multipart/form-data` upload, in bytes; larger gives "
        "413. 0: `max_message_bytes`.",
        default=0,
    )
    multipart_max_header_bytes: int = _help(
        "Largest header block of one part of a `multipart/form-data` upload (its "
        "`Content-Disposition`, `Content-Type` and any other lines), in bytes; larger gives 413.",
        default=16 * 1024,
    )
    multipart_max_total_bytes: int = _help(
        "Largest `multipart/form-data` upload body, every part and boundary counted, in bytes; "
        "larger gives 413. 0: `max_message_bytes`.",
        default=0,
    )
    header_limits: Mapping[str, int] = _help(
        "Maximum lengths of request headers, as `name=length,...` overriding the spec's table.",
        default_factory=lambda: dict(DEFAULT_HEADER_LIMITS),
    )
    inbox_retention: timedelta = _help(
        "How long an accepted message waits in the inbox before it "
        "expires and the sender gets a non-delivery report (code 14).",
        default=timedelta(days=5),
    )
    payload_retention: timedelta = _help(
        "How long payloads of acknowledged or expired messages are kept.", default=timedelta(days=30)
    )
    metadata_retention: timedelta = _help(
        "How long the rows of a finished message (acknowledged, expired or failed) are kept once its "
        "payload is purged, counted from its last status change; then they are deleted and tracking "
        "answers 404 for it. 0 keeps them forever.",
        default=timedelta(days=90),
    )
    sweep_interval: timedelta = _help(
        "How often the maintenance steps (expiry with reports, abandoned uploads, payload purge, "
        "token clean-up) run; each step runs in one server process of all that share the "
        "database, once per interval. 0 disables them.",
        default=timedelta(seconds=60),
    )
    orphan_scan_interval: timedelta = _help(
        "How often the payload store is walked for payloads with no message (left by a crash "
        "mid-send), by one process of all that share the database; the walk grows with the "
        "store, so it runs rarely. 0 disables it.",
        default=timedelta(hours=6),
    )
    job_threads: int = _help(
        "Threads of each server process that run jobs and maintenance steps; 0 runs none in "
        "this process (others sharing the database still do).",
        default=2,
    )
    job_lease: timedelta = _help(
        "A running job's lease, renewed while its process lives: a job whose process stopped is "
        "resumed (or failed) this long after its last renewal.",
        default=timedelta(seconds=60),
    )
    job_poll_interval: timedelta = _help(
        "How often idle job threads look for queued work made by other processes (work queued in "
        "the same process is taken at once), and how often waiting status requests look for "
        "changes made by other processes.",
        default=timedelta(seconds=1),
    )
    job_retention: timedelta = _help(
        "How long finished jobs and their logs are kept.", default=timedelta(days=30)
    )
    sqlite_synchronous: str = _help(
        "SQLite `PRAGMA synchronous` (FULL makes every commit durable against power loss).", default="FULL"
    )
    log_level: str = _help("Logging level of the server.", default="info")
    http_layer: HttpLayer = _help(
        "What parses HTTP for `mailroom serve`: `mailroom` (its own protocol on uvicorn's httptools "
        "parser, the tested and fast path; `serve` refuses to start under a uvicorn it was not tested "
        "with) or `uvicorn` (uvicorn's own h11 protocol, through public interfaces only: any uvicorn "
        "works, large transfers are slower).",
        default=HttpLayer.MAILROOM,
    )
    http_max_head_bytes: int = _help(
        "Largest request head (request line and headers), in bytes, before any authentication; "
        "a larger one is answered 431 and the connection closed as soon as the excess arrives, "
        "before it is buffered (docs/operations.md#limits-at-the-http-edge).",
        default=64 * 1024,
    )
    http_max_url_bytes: int = _help(
        "Longest request URL (path and query), in bytes; a longer one is answered 414 and the "
        "connection closed.",
        default=8 * 1024,
    )
    http_max_headers: int = _help(
        "Most header fields a request may have; more are answered 431 and the connection closed.",
        default=100,
    )
    http_head_timeout: timedelta = _help(
        "Time a client has to send a whole request head, counted from the connection opening or "
        "the end of the previous response; then it is answered 408 (or, if nothing of a request "
        "came, just closed).",
        default=timedelta(seconds=20),
    )
    http_body_timeout: timedelta = _help(
        "Time a request body may stall, no byte of it arriving while the server is reading it, "
        "before the connection is closed (the upload fails and frees its slot). Time the server "
        "itself holds the body back (an upload waiting its turn, a 100-continue not yet sent) "
        "does not count.",
        default=timedelta(seconds=30),
    )
    http_keep_alive: timedelta = _help(
        "Time an idle connection is kept open after a response for the client's next request.",
        default=timedelta(seconds=5),
    )
    payload_store: PayloadBackend = _help(
        "Where payload bytes are kept: `filesystem` (under `{data_dir}/payloads`) or `s3` "
        "(an S3-compatible bucket; install the `s3` extra). Credentials come from the usual "
        "AWS variables (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_PROFILE`, ...) or roles.",
        default=PayloadBackend.FILESYSTEM,
    )
    s3_bucket: str = _help("Bucket holding the payloads (required with `payload_store=s3`).", default="")
    s3_prefix: str = _help(
        "Key prefix for Mailroom's objects in the bucket (a `/` is added if missing); empty uses the "
        "bucket's root.",
        default="",
    )
    s3_endpoint_url: str = _help(
        "URL of an S3-compatible server (MinIO, Ceph, ...), reached with path-style requests; "
        "empty means AWS S3.",
        default="",
    )
    s3_region: str = _help("Region of the bucket; empty uses the AWS configuration's region.", default="")
    s3_part_size: int = _help(
        "Payloads larger than this, in bytes, are uploaded in parts of this size (multipart upload); "
        "each upload holds about one part in memory. At least 5 MiB (S3's minimum).",
        default=8 * 1024 * 1024,
    )

    @property
    def uploads_per_mailbox(self) -> int:
        """``max_uploads_per_mailbox``, its default (0) worked out, never over the total."""
        share = self.max_uploads_per_mailbox or self.max_concurrent_uploads // 4
        return max(1, min(share, self.max_concurrent_uploads))

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{self.data_dir.resolve() / 'mailroom.db'}"

    @property
    def resolved_export_dir(self) -> Path:
        return Path(self.export_dir) if self.export_dir else self.data_dir / "exports"

    @property
    def admin_address(self) -> tuple[str, int] | None:
        """``admin_listen`` as (host, port), or None when the API shares the main listener."""
        return parse_listen(self.admin_listen) if self.admin_listen else None

    def replace(self, **changes: Any) -> Settings:
        return dataclasses.replace(self, **changes)


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*$")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str) -> timedelta:
    """``"90"``/``"90s"``, ``"15m"``, ``"2h"``, ``"5d"`` → timedelta."""
    match = _DURATION.match(text)
    if not match:
        raise SettingsError(f"not a duration: {text!r} (use e.g. 30s, 15m, 2h, 5d)")
    return timedelta(seconds=float(match.group(1)) * _UNITS[match.group(2)])


def parse_bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in {"1", "true", "yes", "on", "y"}:
        return True
    if lowered in {"0", "false", "no", "off", "n", ""}:
        return False
    raise SettingsError(f"not a boolean: {text!r}")


_LISTEN = re.compile(r"^(?:\[(?P<v6>[0-9A-Fa-f:.]+)\]|(?P<host>[^\s:\[\]]+)):(?P<port>\d{1,5})$")


def parse_listen(text: str) -> tuple[str, int]:
    """``"127.0.0.1:8463"``, ``"[::1]:8463"``, ``"localhost:8463"`` → (host, port)."""
    match = _LISTEN.match(text.strip())
    port = int(match.group("port")) if match else 0
    if match is None or not 1 <= port <= 65535:
        raise SettingsError(f"not host:port (e.g. 127.0.0.1:8463 or [::1]:8463): {text!r}")
    return match.group("v6") or match.group("host"), port


def parse_header_limits(text: str) -> dict[str, int]:
    limits = dict(DEFAULT_HEADER_LIMITS)
    for item in filter(None, (part.strip() for part in text.split(","))):
        name, sep, value = item.partition("=")
        if not sep or not value.strip().isdigit():
            raise SettingsError(f"header limit must look like name=length: {item!r}")
        limits[name.strip().lower()] = int(value)
    return limits


def _convert(f: dataclasses.Field[Any], raw: str) -> Any:
    kind = f.type
    try:
        if kind == "Path":
            return Path(raw)
        if kind == "int":
            return int(raw)
        if kind == "bool":
            return parse_bool(raw)
        if kind == "timedelta":
            return parse_duration(raw)
        if kind == "AfterAck":
            return AfterAck(raw.strip().lower())
        if kind == "PayloadBackend":
            return PayloadBackend(raw.strip().lower())
        if kind == "HttpLayer":
            return HttpLayer(raw.strip().lower())
        if kind == "Mapping[str, int]":
            return parse_header_limits(raw)
    except ValueError as exc:
        raise SettingsError(f"{ENV_PREFIX}{f.name.upper()}: {exc}") from None
    return raw


def load_settings(environ: Mapping[str, str], **overrides: Any) -> Settings:
    """Build settings from ``MAILROOM_*`` variables, then explicit overrides (CLI flags)."""
    values: dict[str, Any] = {}
    for f in dataclasses.fields(Settings):
        raw = environ.get(ENV_PREFIX + f.name.upper())
        if raw is not None:
            values[f.name] = _convert(f, raw)
    values.update({k: v for k, v in overrides.items() if v is not None})
    settings = Settings(**values)
    _validate(settings)
    return settings


def _validate_jobs(settings: Settings) -> None:
    if settings.job_threads < 0:
        raise SettingsError("job_threads must be 0 or more")
    if settings.job_lease.total_seconds() < 3 or settings.job_poll_interval.total_seconds() <= 0:
        raise SettingsError("job_lease must be at least 3s and job_poll_interval more than 0")


def _validate_multipart(settings: Settings) -> None:
    if settings.multipart_max_parts < 1:
        raise SettingsError("multipart_max_parts must be at least 1")
    if settings.multipart_max_header_bytes < 256:
        raise SettingsError("multipart_max_header_bytes must be at least 256")
    if settings.multipart_max_part_bytes < 0 or settings.multipart_max_total_bytes < 0:
        raise SettingsError("multipart_max_part_bytes and multipart_max_total_bytes must be 0 or more")


def _validate(settings: Settings) -> None:
    if settings.max_chunk_bytes <= 0 or settings.max_message_bytes <= 0 or settings.max_chunks <= 0:
        raise SettingsError("size and count limits must be positive")
    _validate_jobs(settings)
    _validate_multipart(settings)
    if settings.max_concurrent_uploads < 1:
        raise SettingsError("max_concurrent_uploads must be at least 1")
    if settings.max_uploads_per_mailbox < 0:
        raise SettingsError("max_uploads_per_mailbox must be 0 (a quarter of the total) or more")
    if settings.inline_payload_bytes < 0:
        raise SettingsError("inline_payload_bytes must be 0 or more")
    if settings.max_chunks > MAX_CHUNKS_LIMIT:
        raise SettingsError(f"max_chunks must be at most {MAX_CHUNKS_LIMIT} (payload keys hold 6 digits)")
    if not 1 <= settings.workers <= MAX_WORKERS:
        raise SettingsError(f"workers must be from 1 to {MAX_WORKERS}")
    if settings.db_pool_size < 1 or settings.db_max_overflow < 0:
        raise SettingsError("db_pool_size must be at least 1 and db_max_overflow at least 0")
    if bool(settings.tls_cert) != bool(settings.tls_key):
        raise SettingsError("tls_cert and tls_key go together")
    if settings.require_client_cert and not settings.tls_client_ca:
        raise SettingsError("require_client_cert needs tls_client_ca")
    if settings.tls_client_ca and not settings.tls_cert:
        raise SettingsError("tls_client_ca needs tls_cert and tls_key")
    if settings.sqlite_synchronous.upper() not in {"OFF", "NORMAL", "FULL", "EXTRA"}:
        raise SettingsError("sqlite_synchronous must be OFF, NORMAL, FULL or EXTRA")
    _validate_http(settings)
    _validate_s3(settings)
    _validate_admin(settings)
    _validate_api_tokens(settings)


def _validate_api_tokens(settings: Settings) -> None:
    if settings.api_token_lifetime <= timedelta(0) or settings.api_login_lifetime <= timedelta(0):
        raise SettingsError("api_token_lifetime and api_login_lifetime must be positive")
    if settings.api_revocation_ttl < timedelta(0):
        raise SettingsError("api_revocation_ttl must not be negative")


def _validate_admin(settings: Settings) -> None:
    address = settings.admin_address
    if address is None:
        return
    if not settings.admin_api:
        raise SettingsError("admin_listen needs admin_api=true")
    if address[1] == settings.port:
        raise SettingsError(f"admin_listen must name another port than the main listener's ({settings.port})")


def _validate_http(settings: Settings) -> None:
    if min(settings.http_max_head_bytes, settings.http_max_url_bytes, settings.http_max_headers) < 1:
        raise SettingsError("http_max_head_bytes, http_max_url_bytes and http_max_headers must be positive")
    timeouts = (settings.http_head_timeout, settings.http_body_timeout, settings.http_keep_alive)
    if min(timeouts) <= timedelta(0):
        raise SettingsError("http_head_timeout, http_body_timeout and http_keep_alive must be positive")


#: The longest a SigV4 presigned URL may last (S3 refuses a longer ``X-Amz-Expires``).
S3_MAX_PRESIGN = timedelta(days=7)


def _validate_s3(settings: Settings) -> None:
    if settings.payload_store not in set(PayloadBackend):
        raise SettingsError(f"payload_store must be one of {', '.join(PayloadBackend)}")
    if settings.payload_store != PayloadBackend.S3:
        return
    if not settings.s3_bucket:
        raise SettingsError("payload_store=s3 needs s3_bucket")
    if not S3_MIN_PART_SIZE <= settings.s3_part_size <= S3_MAX_PART_SIZE:
        raise SettingsError(f"s3_part_size must be between {S3_MIN_PART_SIZE} and {S3_MAX_PART_SIZE} bytes")
    if settings.max_chunk_bytes > 10_000 * settings.s3_part_size:
        raise SettingsError("max_chunk_bytes needs more than 10000 parts of s3_part_size (S3's limit)")
    if settings.link_lifetime > S3_MAX_PRESIGN:
        raise SettingsError(
            "link_lifetime is at most 7 days with payload_store=s3 (a SigV4 presigned URL's limit)"
        )


def format_duration(value: timedelta) -> str:
    """The shortest form ``parse_duration`` reads back: ``5d``, ``2h``, ``15m``, ``30s``."""
    seconds = value.total_seconds()
    for unit in ("d", "h", "m"):
        if seconds and seconds % _UNITS[unit] == 0:
            return f"{int(seconds // _UNITS[unit])}{unit}"
    return f"{seconds:g}s"


def format_value(value: Any) -> str:
    if isinstance(value, timedelta):
        return format_duration(value)
    if isinstance(value, Mapping):
        return ",".join(f"{k}={v}" for k, v in value.items())
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def setting_docs() -> list[tuple[str, str, str]]:
    """(environment variable, default, help) for every setting, for docs and `--help`."""
    rows = []
    defaults = Settings()
    for f in dataclasses.fields(Settings):
        default = getattr(defaults, f.name)
        rows.append((ENV_PREFIX + f.name.upper(), format_value(default), f.metadata["help"]))
    return rows
