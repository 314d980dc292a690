"""The JSON API's multipart limits over real HTTP, against a server started with small ones.

A form with more parts than ``MAILROOM_MULTIPART_MAX_PARTS``, or one part larger than
``MAILROOM_MULTIPART_MAX_PART_BYTES``, is 413 in MFT Gateway's error shape, and nothing of it
is kept: no message on any face, no upload left in ``payloads/tmp``, and the parts staged before
the refusal are removed by the sweep once ``staged_attachment_retention`` has passed.
"""

from __future__ import annotations

import uuid

import pytest
from tests.e2e.conftest import StartServer
from tests.e2e.harness import MIB, Mailroom, Payload, files_under, wait_for
from tests.e2e.json_harness import attachment_rows, form_body, form_headers, listed_ids, login

pytestmark = pytest.mark.slow

LIMITS = {
    "MAILROOM_MULTIPART_MAX_PARTS": "3",
    "MAILROOM_MULTIPART_MAX_PART_BYTES": str(2 * MIB),
    "MAILROOM_SWEEP_INTERVAL": "1s",
    "MAILROOM_STAGED_ATTACHMENT_RETENTION": "5s",
}


@pytest.fixture
def server(start_server: StartServer) -> Mailroom:
    return start_server(env=LIMITS)


@pytest.mark.parametrize(
    ("sizes", "staged"),  # staged: the parts stored before the one refused
    [
        pytest.param([MIB] * 5, 3, id="more-parts-than-allowed"),
        pytest.param([MIB, 3 * MIB], 1, id="a-part-too-large"),
    ],
)
def test_over_a_multipart_limit_is_413_and_keeps_nothing(
    server: Mailroom, sizes: list[int], staged: int
) -> None:
    parts = [(f"f{n}.bin", Payload(size, seed=n)) for n, size in enumerate(sizes)]
    boundary = uuid.uuid4().hex
    answer = login(server, "ALICE").submit(form_body(boundary, parts), headers=form_headers(boundary))
    assert answer.status_code == 413, answer.text
    message = answer.json()["message"]
    assert isinstance(message, str)
    assert message
    assert listed_ids(server) == set()
    assert len(attachment_rows(server.data_dir)) == staged  # kept a while, but no message has them
    wait_for(lambda: not files_under(server.uploads), what="no upload left in payloads/tmp")
    # parts staged before the refusal are used by no message: the sweep removes rows and bytes
    wait_for(lambda: not attachment_rows(server.data_dir), timeout=30, what="the sweep")
    wait_for(lambda: not files_under(server.objects), timeout=10, what="the staged bytes removed")
    assert listed_ids(server) == set()
    # the limits refuse only what is over them
    ok = [(f"ok{n}.bin", Payload(MIB, seed=10 + n)) for n in range(3)]
    message_id = login(server, "ALICE").submitted(form_body(boundary, ok), headers=form_headers(boundary))
    assert listed_ids(server) == {message_id}
