"""Signed links: what they name comes back until they expire; any change refuses them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from mailroom.domain.links import LinkSigner
from mailroom.errors import LinkRefused

NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
CLAIMS = {"k": "a", "m": "20261207120000000000_ABCDEF", "a": "20261207120000000001_ABCDEF", "o": "BOB"}


def test_a_link_gives_back_its_claims_until_it_expires():
    signer = LinkSigner(b"k" * 32)
    token = signer.sign(CLAIMS, NOW + timedelta(minutes=10))
    assert signer.verify(token, NOW) == CLAIMS
    assert signer.verify(token, NOW + timedelta(minutes=10)) == CLAIMS
    with pytest.raises(LinkRefused):
        signer.verify(token, NOW + timedelta(minutes=10, seconds=1))


def test_every_changed_or_cut_token_is_refused():
    signer = LinkSigner(b"k" * 32)
    token = signer.sign(CLAIMS, NOW + timedelta(minutes=10))
    for index in range(len(token)):
        for other in {"A", "_", "."} - {token[index]}:
            changed = token[:index] + other + token[index + 1 :]
            with pytest.raises(LinkRefused):
                signer.verify(changed, NOW)
    for cut in range(len(token)):
        with pytest.raises(LinkRefused):
            signer.verify(token[:cut], NOW)


@pytest.mark.parametrize("token", ["", ".", "abc", "é.é", "a" * 5000, "e30.", "null.x"])
def test_garbage_is_refused(token):
    with pytest.raises(LinkRefused):
        LinkSigner(b"k" * 32).verify(token, NOW)


def test_another_key_refuses_the_link():
    token = LinkSigner(b"k" * 32).sign(CLAIMS, NOW + timedelta(minutes=10))
    with pytest.raises(LinkRefused):
        LinkSigner(b"j" * 32).verify(token, NOW)
