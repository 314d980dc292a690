"""A bounded, seeded fuzz run of the HTTP edge: malformed request heads against a real server.

Every request is built from a small schema of what a request head is made of (method, target,
version, header lines, framing, body), each part drawn at random from valid, odd and broken
choices, or replaced by random bytes. No request carries a valid token and none names a route
that answers without one, so the only right answers are 4xx (or a 100 Continue first), or a
close. Each connection must end (the server closes it: refused, timed out or idle) with nothing
but well-formed responses, never a 5xx; the server must log no traceback and still answer.
"""

from __future__ import annotations

import contextlib
import random
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.e2e.edge_client import EDGE_ENV, LAYERS, connect, parse_responses, read_all
from tests.e2e.harness import Mailroom, start_mailroom

pytestmark = pytest.mark.slow

SEED = 20_261_207
CASES = 400

#: (usual, odd) choices for each part of a request
METHODS = (
    [b"GET", b"POST", b"PUT", b"DELETE"],
    [b"PATCH", b"OPTIONS", b"CONNECT", b"G\x00T", b"", b"X" * 40],
)
TARGETS = (
    [
        b"/messageexchange/ALICE/outbox",
        b"/messageexchange/ALICE/inbox",
        b"/messageexchange/BOB/inbox/20260101000000000000_ABCDEF",
        b"/messageexchange/ALICE/outbox/20260101000000000000_ABCDEF/2",
        b"/messageexchange/ALICE/count",
        b"/nowhere",
    ],
    [
        b"*",
        b"http://mailroom/messageexchange/ALICE/inbox",
        b"/%00%ff",
        b"/messageexchange/ALICE/inbox?max_results=" + b"9" * 300,
        b"/a" + b"a" * 9000,
        b"/a" + b"a" * 70_000,
    ],
)
VERSIONS = ([b"HTTP/1.1", b"HTTP/1.0"], [b"HTTP/2.0", b"HTTP/1.1x", b"", b"HTTP/9.9", b"http/1.1"])
ENDINGS = ([b"\r\n"], [b"\n", b"\r", b"\r\r\n"])
NAMES = (
    [b"Mex-To", b"Mex-From", b"Mex-WorkflowID", b"Mex-Chunk-Range", b"Authorization", b"Accept", b"Expect"],
    [b"X-\x00", b"", b"Bad Name", b"\xff\xfe", b"Upgrade", b"Connection"],
)
SEPARATORS = ([b": ", b":"], [b" : ", b"", b"\x00:"])
COUNTS = ([0, 1, 2, 3, 5, 8], [99, 101, 150, 2000])
BAD_CHUNKS = [
    b"zz\r\nhello\r\n0\r\n\r\n",
    b"5\r\nabc\r\n",
    b"ffffffffffffffffff\r\n",
    b"5;" + b"x" * 9000,
    b"-1\r\n",
]
#: The parts of a request that may be the odd one out, or none ("").
PARTS = ["", "", "", "method", "target", "version", "ending", "name", "separator", "value", "count"]
PARTS += ["framing", "framing", "cut"]


def _value(rng: random.Random, odd: bool) -> bytes:
    if not odd:
        usual = [b"BOB", b"NHSMESH ALICE:x:1:202601010000:" + b"0" * 64, b"100-continue", b"close"]
        return rng.choice(usual) if rng.random() < 0.5 else bytes(rng.randrange(32, 127) for _ in range(20))
    return rng.choice([rng.randbytes(rng.randrange(1, 40)), b"v" * 9000, b"v" * 70_000, b"websocket"])


def _framing(rng: random.Random, odd: bool) -> tuple[list[bytes], bytes]:
    """Content-Length and Transfer-Encoding lines, alone, together or contradictory, and a body."""
    declared = rng.choice([0, 5, 100, 70_000])
    body = rng.randbytes(rng.choice([0, 5, 50, 100]))
    if not odd:
        return rng.choice(
            [
                ([], b""),
                ([b"Content-Length: %d" % len(body)], body),
                ([b"Content-Length: %d" % declared], body),  # perhaps short: the body stalls
                ([b"Transfer-Encoding: chunked"], b"5\r\nhello\r\n0\r\n\r\n"),
            ]
        )
    return rng.choice(
        [
            ([b"Content-Length: %d" % declared, b"Content-Length: %d" % (declared + 1)], body),
            ([b"Content-Length: -5"], body),
            ([b"Content-Length: 1e3"], body),
            ([b"Transfer-Encoding: chunked"], rng.choice(BAD_CHUNKS)),
            ([b"Transfer-Encoding: chunked", b"Content-Length: 5"], b"0\r\n\r\n"),
            ([b"Transfer-Encoding: gzip, chunked"], b"0\r\n\r\n"),
            ([b"Transfer-Encoding:  chunked "], b"5\r\nhello\r\n0\r\n\r\n"),
        ]
    )


def request(rng: random.Random) -> bytes:
    """One randomized request, one part of it (or none) odd or broken; or just random bytes."""
    if rng.random() < 0.08:
        return rng.randbytes(rng.randrange(1, 3000))
    odd = rng.choice(PARTS)

    def pick(part: str, choices: tuple[list[Any], list[Any]]) -> Any:
        return rng.choice(choices[part == odd])

    end = pick("ending", ENDINGS)
    line = b" ".join([pick("method", METHODS), pick("target", TARGETS), pick("version", VERSIONS)])
    headers = [b"Host: mailroom"]
    for _ in range(pick("count", COUNTS)):
        name = pick("name", NAMES) if rng.random() < 0.5 or odd == "name" else rng.choice(NAMES[0])
        headers.append(name + pick("separator", SEPARATORS) + _value(rng, odd == "value"))
    framing, body = _framing(rng, odd == "framing")
    headers += framing
    rng.shuffle(headers)
    head = end.join([line, *headers]) + end + end
    if odd == "cut":
        head, body = head[: rng.randrange(1, len(head))], b""
    return head + body


@pytest.fixture(scope="module", params=LAYERS)
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, template_data_dir: Path
) -> Iterator[Mailroom]:
    root = tmp_path_factory.mktemp(f"fuzz-{request.param}")
    started = start_mailroom(root, template_data_dir, env={**EDGE_ENV, "MAILROOM_HTTP_LAYER": request.param})
    yield started
    started.stop()


def _exchange(server: Mailroom, sent: bytes) -> tuple[bytes, list[int]]:
    with connect(server) as sock:
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # refused before all was read
            sock.sendall(sent)
        data, closed = read_all(sock, 20)
    assert closed, f"the connection was not ended: {sent[:200]!r}"
    return sent, [response.status for response in parse_responses(data)]


def test_malformed_heads_get_4xx_or_a_close_never_a_5xx_and_the_server_goes_on(server: Mailroom) -> None:
    rng = random.Random(SEED)
    cases = [request(rng) for _ in range(CASES)]
    with ThreadPoolExecutor(16) as pool:
        outcomes = list(pool.map(lambda sent: _exchange(server, sent), cases))
    for sent, statuses in outcomes:
        assert all(status == 100 or 400 <= status < 500 for status in statuses), (statuses, sent[:300])
    assert sum(1 for _, statuses in outcomes if statuses) > CASES // 2  # most were answered, not just cut
    assert httpx.get(f"{server.process.base_url}/_ping", timeout=10).status_code == 200
    assert server.process.running
    log = server.process.log_path.read_text(encoding="utf-8")
    assert "Traceback" not in log
    assert "Exception in ASGI application" not in log
