"""web/messaging/multipart.py: multipart/form-data bodies read part by part while they stream.

Pure: every body is a list of byte pieces, split where the parser is likeliest to slip (inside a
delimiter, between its CR and LF, one byte at a time).
"""

from __future__ import annotations

import hashlib
import itertools
import logging
import os
import tracemalloc
from collections.abc import Iterable, Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mailroom import errors
from mailroom.settings import SettingsError, load_settings
from mailroom.web.messaging.multipart import (
    FormPart,
    MultipartLimits,
    boundary_of,
    file_name_ok,
    is_form_data,
    read_parts,
)

BOUNDARY = b"----mailroomBoundary7MA4YWxk"
LIMITS = MultipartLimits()

#: Content meant to trip a boundary search: the delimiter's prefixes, a lone CR at the end,
#: something that is the boundary but for its last byte, and NULs.
AWKWARD = [
    b"",
    b"\r",
    b"\r\n",
    b"\r\n--",
    b"\r\n--" + BOUNDARY[:-1],
    b"plain text\r\n--" + BOUNDARY[:-1] + b"X\r\nmore",
    b"--" + BOUNDARY + b"X",
    b"ends with CR\r",
    b"\x00\xff" * 300 + b"\r\n-",
    bytes(range(256)) * 3,
]


def encode(parts: Iterable[tuple[str, str | None, bytes]], boundary: bytes = BOUNDARY) -> bytes:
    """A multipart/form-data body as clients write it: (name, file name or None, content)."""
    out = bytearray()
    for name, filename, content in parts:
        out += b"--" + boundary + b"\r\n"
        disposition = f'form-data; name="{name}"'
        if filename is not None:
            disposition += f'; filename="{filename}"'
            out += f"Content-Disposition: {disposition}\r\nContent-Type: application/pdf\r\n\r\n".encode()
        else:
            out += f"Content-Disposition: {disposition}\r\n\r\n".encode()
        out += content + b"\r\n"
    out += b"--" + boundary + b"--\r\n"
    return bytes(out)


def raw(*parts: bytes, boundary: bytes = BOUNDARY) -> bytes:
    """A body from parts given as header lines, blank line and content already joined."""
    body = b"".join(b"--" + boundary + b"\r\n" + part + b"\r\n" for part in parts)
    return body + b"--" + boundary + b"--\r\n"


def collect(pieces: Iterable[bytes], limits: MultipartLimits = LIMITS) -> list[tuple[str, str | None, bytes]]:
    """Every part, its content read to the end."""
    return [(p.name, p.filename, b"".join(p.pieces)) for p in read_parts(BOUNDARY, pieces, limits)]


def split(body: bytes, *at: int) -> list[bytes]:
    cuts = [0, *sorted(at), len(body)]
    return [body[a:b] for a, b in itertools.pairwise(cuts)]


def refusal(body: bytes | list[bytes], limits: MultipartLimits = LIMITS) -> errors.MailroomError:
    pieces = [body] if isinstance(body, bytes) else body
    with pytest.raises((errors.ValidationFailed, errors.PayloadTooLarge)) as caught:
        collect(pieces, limits)
    return caught.value


FILES = [("file", f"attachment-{i}.bin", content) for i, content in enumerate(AWKWARD)]
BODY = encode([("subject", None, b"Quarterly figures"), *FILES])
EXPECTED = [("subject", None, b"Quarterly figures"), *FILES]


# -- round trips --


def test_several_files_round_trip_byte_exact_in_one_piece():
    assert collect([BODY]) == EXPECTED


def test_split_in_two_at_every_position():
    for at in range(len(BODY) + 1):
        assert collect(split(BODY, at)) == EXPECTED, at


def test_split_in_three_around_every_delimiter():
    delimiter = b"\r\n--" + BOUNDARY
    starts = [i for i in range(len(BODY)) if BODY.startswith(delimiter, i)]
    assert len(starts) == len(EXPECTED) + 1  # one file holds "--BOUNDARYX" at a line's start
    for start in starts:
        end = start + len(delimiter) + 2  # past the CRLF (or "--") after the boundary
        for a in range(max(0, start - 3), min(len(BODY), end + 2)):
            # a piece of one or two bytes, or one that ends just past the delimiter
            for b in {a + 1, a + 2, max(a + 1, end)}:
                assert collect(split(BODY, a, min(b, len(BODY)))) == EXPECTED, (a, b)


def test_one_byte_pieces():
    assert collect([BODY[i : i + 1] for i in range(len(BODY))]) == EXPECTED


def test_fields_have_their_text_and_files_their_names_and_types():
    body = encode([("subject", None, "Grüße".encode()), ("file", "report.pdf", b"%PDF")])
    parts = list(_consumed(read_parts(BOUNDARY, [body], LIMITS)))
    subject, file = parts
    assert (subject.name, subject.filename, subject.value, subject.content_type) == (
        "subject",
        None,
        "Grüße",
        "text/plain",
    )
    assert not subject.is_file
    assert (file.name, file.filename, file.value, file.content_type) == (
        "file",
        "report.pdf",
        None,
        "application/pdf",
    )
    assert file.is_file


def _consumed(parts: Iterator[FormPart]) -> Iterator[FormPart]:
    for part in parts:
        part.skip()
        yield part


def test_a_file_part_without_content_type_is_octet_stream():
    body = raw(b'Content-Disposition: form-data; name="f"; filename="a"\r\n\r\nxyz')
    [part] = _consumed(read_parts(BOUNDARY, [body], LIMITS))
    assert part.content_type == "application/octet-stream"


def test_a_body_with_no_parts_and_a_crlf_preamble_and_an_epilogue():
    assert collect([b"--" + BOUNDARY + b"--\r\n"]) == []
    assert collect([b"\r\n" + BODY + b"epilogue, ignored"]) == EXPECTED


def test_pieces_reused_by_their_producer_are_copied():
    """DirectBody hands out views of buffers it fills again once the next piece is asked for."""

    def reusing(body: bytes, size: int) -> Iterator[memoryview]:
        buffer = bytearray(size)
        for start in range(0, len(body), size):
            chunk = body[start : start + size]
            buffer[: len(chunk)] = chunk
            yield memoryview(buffer)[: len(chunk)]
            buffer[:] = b"\xee" * size  # scribbled over once the consumer moved on

    for size in (1, 7, 64, 4096):
        assert collect(reusing(BODY, size)) == EXPECTED


def test_a_part_must_be_read_or_skipped_before_the_next():
    parts = read_parts(BOUNDARY, [BODY], LIMITS)
    next(parts)  # the subject field: read whole already
    next(parts)  # a file, left unread
    with pytest.raises(RuntimeError, match="read to its end or skipped"):
        next(parts)


def test_skipping_parts():
    names = []
    for part in read_parts(BOUNDARY, split(BODY, 50, 300), LIMITS):
        names.append(part.filename)
        part.skip()
    assert names == [None, *(f for _, f, _ in FILES)]


# -- streaming --


def test_a_200_mib_part_streams_with_bounded_memory():
    piece = os.urandom(1024 * 1024)
    count = 200
    head = b"--" + BOUNDARY + b'\r\nContent-Disposition: form-data; name="file"; filename="big.bin"\r\n\r\n'
    tail = b"\r\n--" + BOUNDARY + b"--\r\n"

    def body() -> Iterator[bytes]:
        yield head
        for _ in range(count):
            yield piece
        yield tail

    expected = hashlib.sha256()
    for _ in range(count):
        expected.update(piece)
    tracemalloc.start()
    try:
        digest, size = hashlib.sha256(), 0
        most_pieces = 0
        for part in read_parts(BOUNDARY, body(), MultipartLimits(max_part_bytes=count * len(piece))):
            for chunk in part.pieces:
                digest.update(chunk)
                size += len(chunk)
                most_pieces += 1
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert size == count * len(piece)
    assert digest.hexdigest() == expected.hexdigest()
    assert most_pieces >= count  # handed out as it came, not gathered
    assert peak < 4 * 1024 * 1024, f"peak {peak / 2**20:.1f} MiB"


def test_content_is_handed_out_before_the_part_ends():
    """The consumer gets each piece's content as that piece arrives, not at the part's end."""
    asked = []

    def body() -> Iterator[bytes]:
        head = b"--" + BOUNDARY + b'\r\nContent-Disposition: form-data; name="f"; filename="a"\r\n\r\n'
        asked.append("head")
        yield head
        for i in range(5):
            asked.append(i)
            yield b"x" * 1000
        asked.append("tail")
        yield b"\r\n--" + BOUNDARY + b"--\r\n"

    [part] = list(itertools.islice(read_parts(BOUNDARY, body(), LIMITS), 1))
    first = next(part.pieces)
    assert len(first) > 0
    assert "tail" not in asked
    assert len(asked) <= 3


# -- a body cut short --


class Disconnected(Exception):
    """Stands for Starlette's ClientDisconnect, raised by the body iterator."""


def test_a_body_cut_short_inside_a_file_raises_from_its_pieces():
    cut = BODY.index(AWKWARD[-1]) + 100
    parts = read_parts(BOUNDARY, [BODY[:cut]], LIMITS)
    got: list[bytes] = []

    def store_all() -> None:
        for part in parts:
            got.extend(part.pieces)

    with pytest.raises(errors.ValidationFailed) as caught:
        store_all()
    assert caught.value.location == "body"
    assert "ends inside part 'file'" in caught.value.description
    assert got  # some content came before the end was found missing


def test_a_client_that_goes_away_is_heard_of_as_it_is():
    def body() -> Iterator[bytes]:
        yield BODY[:400]
        raise Disconnected

    with pytest.raises(Disconnected):
        collect(body())


def test_cut_at_every_position_is_refused():
    for at in range(len(BODY) - len(b"--\r\n")):
        error = refusal(BODY[:at])
        assert isinstance(error, errors.ValidationFailed), at


def test_a_missing_final_boundary_is_refused():
    body = BODY[: -len(b"--" + BOUNDARY + b"--\r\n")]
    assert "final multipart boundary" in refusal(body).description


# -- limits --


def test_too_many_parts():
    limits = MultipartLimits(max_parts=3)
    assert len(collect([encode([("f", f"{i}", b"x") for i in range(3)])], limits)) == 3
    error = refusal(encode([("f", f"{i}", b"x") for i in range(4)]), limits)
    assert isinstance(error, errors.PayloadTooLarge)
    assert error.description == "The multipart body has more than 3 parts"


def test_default_part_count_is_100():
    assert len(collect([encode([("f", None, b"") for _ in range(100)])])) == 100
    assert "more than 100 parts" in refusal(encode([("f", None, b"") for _ in range(101)])).description


def test_a_part_too_large():
    limits = MultipartLimits(max_part_bytes=1000)
    assert collect([encode([("f", "a", b"x" * 1000)])], limits) == [("f", "a", b"x" * 1000)]
    for pieces in ([encode([("f", "a", b"x" * 1001)])], split(encode([("f", "a", b"x" * 5000)]), 200, 900)):
        error = refusal(pieces, limits)
        assert isinstance(error, errors.PayloadTooLarge)
        assert error.description == "A multipart part is larger than 1000 bytes"


def test_a_part_too_large_raises_from_its_pieces_after_what_fit():
    parts = read_parts(
        BOUNDARY, split(encode([("f", "a", b"x" * 5000)]), 600, 1200), MultipartLimits(max_part_bytes=1000)
    )
    part = next(parts)
    assert next(part.pieces)
    with pytest.raises(errors.PayloadTooLarge):
        part.skip()
    with pytest.raises(errors.PayloadTooLarge):  # asked again: the same answer
        next(parts)


def test_headers_too_large():
    limits = MultipartLimits(max_header_bytes=300)
    fits = raw(b'Content-Disposition: form-data; name="f"; filename="' + b"a" * 200 + b'"\r\n\r\nx')
    assert collect([fits], limits)
    long_value = raw(b'Content-Disposition: form-data; name="f"; filename="' + b"a" * 300 + b'"\r\n\r\nx')
    many_lines = raw(
        b"".join(b"X-%d: y\r\n" % i for i in range(60)) + b'Content-Disposition: form-data; name="f"\r\n\r\nx'
    )
    long_name = raw(b"X-" + b"n" * 400 + b": y\r\n\r\nx")
    for body in (long_value, many_lines, long_name):
        for pieces in ([body], [body[i : i + 1] for i in range(len(body))]):
            error = refusal(pieces, limits)
            assert isinstance(error, errors.PayloadTooLarge)
            assert error.description == "A multipart part's headers are larger than 300 bytes"


def test_the_default_header_limit_is_16_kib():
    assert LIMITS.max_header_bytes == 16 * 1024
    ok = raw(b"X-Pad: " + b"p" * 15000 + b'\r\nContent-Disposition: form-data; name="f"\r\n\r\nx')
    assert collect([ok]) == [("f", None, b"x")]
    too_long = raw(b"X-Pad: " + b"p" * 17000 + b'\r\nContent-Disposition: form-data; name="f"\r\n\r\nx')
    assert isinstance(refusal(too_long), errors.PayloadTooLarge)


def test_a_body_too_large():
    body = encode([("f", "a", b"x" * 100), ("g", "b", b"y" * 100)])
    assert collect([body], MultipartLimits(max_total_bytes=len(body)))
    for pieces in ([body], split(body, 100, 200)):
        error = refusal(pieces, MultipartLimits(max_total_bytes=len(body) - 1))
        assert isinstance(error, errors.PayloadTooLarge)
        assert error.description == f"The multipart body is larger than {len(body) - 1} bytes"


def test_an_epilogue_counts_towards_the_total():
    body = encode([("f", "a", b"x")])
    error = refusal([body, b"e" * 100], MultipartLimits(max_total_bytes=len(body) + 50))
    assert isinstance(error, errors.PayloadTooLarge)


def test_a_field_too_large():
    limits = MultipartLimits(max_field_bytes=10)
    assert collect([encode([("subject", None, b"0123456789")])], limits)
    error = refusal(encode([("subject", None, b"0123456789A")]), limits)
    assert isinstance(error, errors.PayloadTooLarge)
    assert error.description == "Form field 'subject' is longer than 10 bytes"
    assert LIMITS.max_field_bytes == 64 * 1024


def test_limits_from_settings():
    defaults = load_settings({})
    limits = MultipartLimits.from_settings(defaults)
    assert limits.max_parts == 100
    assert limits.max_header_bytes == 16 * 1024
    assert limits.max_part_bytes == limits.max_total_bytes == defaults.max_message_bytes
    chosen = load_settings(
        {
            "MAILROOM_MAX_MESSAGE_BYTES": "5000",
            "MAILROOM_MULTIPART_MAX_PARTS": "7",
            "MAILROOM_MULTIPART_MAX_PART_BYTES": "1000",
            "MAILROOM_MULTIPART_MAX_HEADER_BYTES": "512",
        }
    )
    assert MultipartLimits.from_settings(chosen) == MultipartLimits(
        max_parts=7, max_part_bytes=1000, max_header_bytes=512, max_total_bytes=5000
    )


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("MULTIPART_MAX_PARTS", "0"),
        ("MULTIPART_MAX_HEADER_BYTES", "100"),
        ("MULTIPART_MAX_PART_BYTES", "-1"),
        ("MULTIPART_MAX_TOTAL_BYTES", "-1"),
    ],
)
def test_unusable_limit_settings_are_refused(name, value):
    with pytest.raises(SettingsError, match=name.lower()):
        load_settings({f"MAILROOM_{name}": value})


# -- malformed bodies --

DISPOSITION = b'Content-Disposition: form-data; name="f"'

MALFORMED = {
    "garbage": b"this is not multipart at all",
    "another boundary": encode([("f", "a", b"x")], boundary=b"other"),
    "a preamble": b"preamble\r\n" + BODY,
    "no blank line after headers": b"--" + BOUNDARY + b"\r\n" + DISPOSITION + b"\r\n",
    "a header without a colon": raw(b"Content-Disposition form-data\r\n\r\nx"),
    "a header with a bad name": raw(b"Bad Name: x\r\n" + DISPOSITION + b"\r\n\r\nx"),
    "a bare CR in a header": raw(DISPOSITION + b"\rX\r\n\r\nx"),
    "no Content-Disposition": raw(b"Content-Type: text/plain\r\n\r\nx"),
    "no headers at all": raw(b"\r\nx"),
    "a disposition without a name": raw(b'Content-Disposition: form-data; filename="a"\r\n\r\nx'),
    "a disposition with an empty name": raw(b'Content-Disposition: form-data; name=""\r\n\r\nx'),
    "a disposition without parameters": raw(b"Content-Disposition: form-data\r\n\r\nx"),
    "an attachment disposition": raw(b'Content-Disposition: attachment; name="f"\r\n\r\nx'),
    "two dispositions": raw(DISPOSITION + b"\r\n" + DISPOSITION + b"\r\n\r\nx"),
    "a base64 part": raw(DISPOSITION + b"\r\nContent-Transfer-Encoding: base64\r\n\r\neA=="),
    "a field that is not UTF-8": raw(DISPOSITION + b"\r\n\r\n\xff\xfe"),
    "a name with a control character": raw(b'Content-Disposition: form-data; name="a\x01b"\r\n\r\nx'),
    "a content type that is no media type": raw(DISPOSITION + b"\r\nContent-Type: nonsense\r\n\r\nx"),
    "a content type too long": raw(DISPOSITION + b"\r\nContent-Type: text/" + b"x" * 300 + b"\r\n\r\nx"),
    "a hostile file name": raw(b'Content-Disposition: form-data; name="f"; filename="a\x00b"\r\n\r\nx'),
    "an empty file name": raw(b'Content-Disposition: form-data; name="f"; filename=""\r\n\r\nx'),
    "junk after a delimiter": BODY.replace(b"--" + BOUNDARY + b"\r\n", b"--" + BOUNDARY + b" x\r\n", 1),
    "an empty body": b"",
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_bodies_are_refused(case):
    body = MALFORMED[case]
    for pieces in ([body], [body[i : i + 1] for i in range(len(body))]):
        error = refusal(pieces)
        assert isinstance(error, errors.ValidationFailed), case
        assert error.location == "body"
        assert error.description


def test_a_named_field_error_names_the_field():
    error = refusal(raw(b'Content-Disposition: form-data; name="subject"\r\n\r\n\xff'))
    assert isinstance(error, errors.ValidationFailed)
    assert error.name == "subject"
    assert error.description == "form field 'subject' is not UTF-8 text"


def test_parts_before_a_malformed_one_are_handed_out_whole():
    body = encode([("f", "a.bin", b"good")])[: -len(b"--" + BOUNDARY + b"--\r\n")]
    body += b"--" + BOUNDARY + b"\r\nContent-Type: text/plain\r\n\r\nx\r\n--" + BOUNDARY + b"--\r\n"
    parts = read_parts(BOUNDARY, [body], LIMITS)
    first = next(parts)
    assert b"".join(first.pieces) == b"good"
    with pytest.raises(errors.ValidationFailed, match="no Content-Disposition"):
        next(parts)


# -- the Content-Type header --


def test_boundary_of():
    assert boundary_of(f"multipart/form-data; boundary={BOUNDARY.decode()}") == BOUNDARY
    assert boundary_of('Multipart/Form-Data; charset=utf-8; boundary="a b=c"') == b"a b=c"
    assert boundary_of("multipart/form-data; boundary=" + "x" * 70) == b"x" * 70
    assert is_form_data("multipart/form-data; boundary=x")
    assert not is_form_data("application/octet-stream")
    assert not is_form_data(None)


@pytest.mark.parametrize(
    ("content_type", "msg"),
    [
        (None, "must be multipart/form-data"),
        ("application/json", "must be multipart/form-data"),
        ("multipart/mixed; boundary=x", "must be multipart/form-data"),
        ("multipart/form-data", "without a boundary"),
        ("multipart/form-data; charset=utf-8", "without a boundary"),
        ("multipart/form-data; boundary=", "without a boundary"),
        ('multipart/form-data; boundary=""', "without a boundary"),
        ("multipart/form-data; boundary=" + "x" * 71, "longer than 70"),
        ("multipart/form-data; boundary=a\rb", "does not allow"),
        ('multipart/form-data; boundary="trailing "', "does not allow"),
        ("multipart/form-data; boundary=a\x00b", "does not allow"),
        ("multipart/form-data; boundary=caf\u00e9", "does not allow"),
        ("multipart/form-data; boundary=\u0100", "no HTTP header holds"),
    ],
)
def test_bad_content_types_are_refused(content_type, msg):
    with pytest.raises(errors.ValidationFailed, match=msg) as caught:
        boundary_of(content_type)
    assert (caught.value.location, caught.value.name) == ("header", "Content-Type")


def test_read_parts_checks_the_boundary_too():
    with pytest.raises(errors.ValidationFailed, match="does not allow"):
        read_parts(b"a\r\nb", [BODY], LIMITS)


# -- file names --


@pytest.mark.parametrize(
    ("sent", "kept"),
    [
        ("report.pdf", "report.pdf"),
        ("../../etc/passwd", "passwd"),
        ("/etc/shadow", "shadow"),
        ("C:\\Users\\me\\evil.exe", "evil.exe"),
        ("\\\\server\\share\\x.txt", "x.txt"),
        ("C:x.txt", "x.txt"),
        ("dir/..\\mixed/name.txt", "name.txt"),
        ("r\u00e9sum\u00e9 \u2013 2026.pdf", "r\u00e9sum\u00e9 \u2013 2026.pdf"),
        (".hidden", ".hidden"),
        ("a" * 255, "a" * 255),
        ("x/" + "a" * 255, "a" * 255),
    ],
)
def test_file_names_kept(sent, kept):
    assert file_name_ok(sent) == kept
    assert file_name_ok(kept) == kept


@pytest.mark.parametrize(
    "sent",
    [
        "",
        " ",
        ".",
        "..",
        "../..",
        "dir/",
        "C:",
        "a\x00b",
        "a\nb",
        "a\rb",
        "\x1b[31mred",
        "tab\there",
        "del\x7f",
        "c1\x85",
        "txt.\u202eexe",
        "a\u2028b",
        "a" * 256,
    ],
)
def test_file_names_refused(sent):
    with pytest.raises(errors.ValidationFailed) as caught:
        file_name_ok(sent)
    assert (caught.value.location, caught.value.name) == ("body", "filename")


def test_file_names_in_a_body_are_sanitised_and_decoded():
    body = raw(
        b'Content-Disposition: form-data; name="f"; filename="..\\..\\secret.txt"\r\n\r\nx',
        b'Content-Disposition: form-data; name="g"; filename="/tmp/r\xc3\xa9sum\xc3\xa9.pdf"\r\n\r\ny',
        b'Content-Disposition: form-data; name="h"; filename="latin\xe9.txt"\r\n\r\nz',
    )
    assert [f for _, f, _ in collect([body])] == ["secret.txt", "résumé.pdf", "latiné.txt"]


# -- fuzzing: nothing but the two refusals ever escapes --

FUZZ_LIMITS = MultipartLimits(
    max_parts=5, max_part_bytes=200, max_header_bytes=256, max_total_bytes=2000, max_field_bytes=50
)
SEEDS = [
    BODY,
    encode([("f", "a", b"x" * 150), ("subject", None, b"hi")]),
    encode([("f", None, b"") for _ in range(6)]),
    raw(b"X-Pad: " + b"p" * 300 + b"\r\n\r\nx"),
    b"--" + BOUNDARY + b"--\r\n",
]


def _consume_all(pieces: list[bytes]) -> None:
    try:
        for part in read_parts(BOUNDARY, pieces, FUZZ_LIMITS):
            part.skip()
    except (errors.ValidationFailed, errors.PayloadTooLarge):
        pass


def _pieces(body: bytes, cuts: list[int]) -> list[bytes]:
    return split(body, *(c % (len(body) + 1) for c in cuts))


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(body=st.binary(max_size=600), cuts=st.lists(st.integers(min_value=0, max_value=10_000), max_size=6))
def test_fuzz_random_bodies(body, cuts):
    _consume_all(_pieces(body, cuts))
    _consume_all(_pieces(b"--" + BOUNDARY + b"\r\n" + body, cuts))


@st.composite
def mutated(draw):
    body = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(min_value=1, max_value=6))):
        at = draw(st.integers(min_value=0, max_value=len(body)))
        action = draw(st.sampled_from(["insert", "delete", "replace", "truncate", "duplicate"]))
        token = draw(
            st.sampled_from(
                [b"\r", b"\n", b"\r\n", b"-", b"--", b"--" + BOUNDARY, b":", b'"', b";", b"\x00", b"\xff"]
            )
            | st.binary(min_size=1, max_size=8)
        )
        if action == "insert":
            body[at:at] = token
        elif action == "delete":
            del body[at : at + len(token)]
        elif action == "replace":
            body[at : at + len(token)] = token
        elif action == "truncate":
            del body[at:]
        else:
            body[at:at] = body[at : at + draw(st.integers(min_value=1, max_value=80))]
    return bytes(body)


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(body=mutated(), cuts=st.lists(st.integers(min_value=0, max_value=10_000), max_size=6))
def test_fuzz_mutated_bodies(body, cuts):
    _consume_all(_pieces(body, cuts))


def test_a_malformed_body_logs_no_warning(caplog):
    """The client is told (the refusal); the server's log gains no line per bad request."""
    caplog.set_level(logging.DEBUG)
    refusal(MALFORMED["garbage"])
    assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []
    assert any("boundary" in r.getMessage() for r in caplog.records)  # still there at DEBUG
