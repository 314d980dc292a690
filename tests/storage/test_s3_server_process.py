"""``mailroom serve`` on the S3 store as operators run it: configured only by environment
variables (``MAILROOM_*`` and the usual ``AWS_*``), a real server process, moto over HTTP."""

from __future__ import annotations

import contextlib
import threading

import pytest
from tests.e2e.harness import (
    MIB,
    Mailroom,
    Payload,
    PeakRss,
    blocking_body,
    download,
    make_data_dir,
    send,
    start_mailroom,
    wait_for,
)

pytestmark = [pytest.mark.s3, pytest.mark.slow]

SIZE = 30 * 1000 * 1000
MAX_GROWTH = 40 * MIB  # the filesystem store's bound in tests/e2e/test_memory.py


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    return make_data_dir(tmp_path_factory.mktemp("template") / "data")


def s3_env(s3_server, bucket: str, **extra: str) -> dict[str, str]:
    return {
        **s3_server.env(),
        "MAILROOM_PAYLOAD_STORE": "s3",
        "MAILROOM_S3_BUCKET": bucket,
        "MAILROOM_S3_PREFIX": "exchange",
        "MAILROOM_S3_ENDPOINT_URL": s3_server.endpoint_url,
        "MAILROOM_S3_PART_SIZE": str(5 * MIB),
        **extra,
    }


@pytest.fixture
def servers():
    started: list[Mailroom] = []
    yield started
    for server in started:
        server.stop()


def test_large_chunk_streams_through_s3_in_flat_memory(tmp_path, template, s3_server, servers):
    bucket = s3_server.new_bucket()
    server = start_mailroom(tmp_path / "a", template, env=s3_env(s3_server, bucket))
    servers.append(server)
    alice, bob = server.client("ALICE", timeout=120), server.client("BOB", timeout=120)
    warm = send(alice, Payload(6 * MIB, seed=0).pieces())  # imports, pools and a multipart upload
    assert download(bob, warm)[0] == 200

    payload = Payload(SIZE, seed=1)
    with PeakRss(server.pid) as upload:
        message_id = send(alice, payload.pieces(), content_length=str(SIZE))
    with PeakRss(server.pid) as fetch:
        status, digest, size = download(bob, message_id)

    print(f"S3 30 MB: upload +{upload.growth / MIB:.1f} MiB, download +{fetch.growth / MIB:.1f} MiB")
    assert (status, digest, size) == (200, payload.sha256, SIZE)
    assert upload.growth < MAX_GROWTH, f"upload grew {upload.growth / MIB:.1f} MiB"
    assert fetch.growth < MAX_GROWTH, f"download grew {fetch.growth / MIB:.1f} MiB"
    keys = s3_server.keys(bucket)
    assert sorted(key.split("/")[1] for key in keys) == sorted([warm, message_id])
    assert all(key.startswith("exchange/") for key in keys)
    assert [path for path in (server.data_dir / "payloads").rglob("*") if path.is_file()] == []


def test_an_upload_cut_off_by_a_crash_is_aborted_by_a_sweep(tmp_path, template, s3_server, servers):
    bucket = s3_server.new_bucket()
    crashing = start_mailroom(tmp_path / "a", template, env=s3_env(s3_server, bucket))
    servers.append(crashing)
    release = threading.Event()
    body = blocking_body(Payload(6 * MIB, seed=2).pieces(), release)  # one part sent, then stuck
    sender = threading.Thread(target=_send_ignoring_errors, args=(crashing, body), daemon=True)
    sender.start()
    try:
        wait_for(lambda: len(s3_server.open_uploads(bucket)) == 1, what="a multipart upload")
        crashing.process.kill()
    finally:
        release.set()
        sender.join(10)
    assert s3_server.keys(bucket) == []  # nothing visible
    assert len(s3_server.open_uploads(bucket)) == 1  # the parts a crash leaves

    # another process's sweep (the first runs at start) aborts it; moto dates every upload
    # 2010, so it is already past the one-hour grace period real S3 would wait for
    sweeper = start_mailroom(
        tmp_path / "b", template, env=s3_env(s3_server, bucket, MAILROOM_SWEEP_INTERVAL="1")
    )
    servers.append(sweeper)
    wait_for(lambda: s3_server.open_uploads(bucket) == [], what="the sweep to abort the upload")


def _send_ignoring_errors(server: Mailroom, body) -> None:
    with contextlib.suppress(Exception):  # the server is killed mid-request, as intended
        server.client("ALICE").post(
            "/messageexchange/ALICE/outbox",
            content=body,
            headers={"mex-to": "BOB", "mex-workflowid": "E2E_WORKFLOW"},
        )
