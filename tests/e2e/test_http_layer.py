"""``MAILROOM_HTTP_LAYER``: both HTTP layers serve a whole exchange from a real server process."""

from __future__ import annotations

import pytest
from tests.e2e.conftest import StartServer
from tests.e2e.harness import MIB, Payload, download_message, expected, inbox, send, send_chunk

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("layer", ["mailroom", "uvicorn"])
def test_each_http_layer_carries_a_chunked_message_and_says_which_it_is(
    start_server: StartServer, layer: str
) -> None:
    server = start_server(env={"MAILROOM_HTTP_LAYER": layer})
    assert f"HTTP layer {layer}" in server.process.log_path.read_text(encoding="utf-8")
    alice, bob = server.client("ALICE"), server.client("BOB")
    parts = [Payload(3 * MIB, seed=1), Payload(MIB // 2, seed=2)]
    message_id = send(alice, parts[0].bytes(), chunks="1:2")
    assert send_chunk(alice, message_id, 2, 2, parts[1].pieces()).status_code == 202
    assert message_id in inbox(bob)
    assert download_message(bob, message_id) == expected(parts)
    assert bob.put(f"/messageexchange/BOB/inbox/{message_id}/status/acknowledged").status_code == 200
    assert message_id not in inbox(bob)
