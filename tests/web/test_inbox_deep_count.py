"""``approx_inbox_count`` of a deep inbox is reused for a few seconds instead of counted per page.

Counting a 100,000-message inbox costs tens of milliseconds, a page well under one (see
docs/performance.md); small inboxes are still counted exactly on every page.
"""

from __future__ import annotations

from mailroom.services import receiving

INBOX = "/messageexchange/BOB/inbox"


def approx(client, headers) -> int:
    response = client.get(INBOX, headers=headers("BOB"))
    assert response.status_code == 200
    return int(response.json()["approx_inbox_count"])


def test_small_inbox_is_counted_on_every_page(client, headers, send_many, monkeypatch):
    monkeypatch.setattr(receiving, "EXACT_COUNT_UP_TO", 3)
    send_many(2)
    assert approx(client, headers) == 2
    send_many(1)
    assert approx(client, headers) == 3


def test_deep_inbox_count_is_reused_until_it_is_stale(client, headers, send_many, monkeypatch):
    monkeypatch.setattr(receiving, "EXACT_COUNT_UP_TO", 2)
    send_many(3)
    assert approx(client, headers) == 3
    send_many(1)
    assert approx(client, headers) == 3  # the deep inbox's count from a moment ago
    assert client.get("/messageexchange/BOB/count", headers=headers("BOB")).json()["count"] == 4  # exact
    monkeypatch.setattr(receiving, "APPROX_COUNT_SECONDS", 0.0)
    assert approx(client, headers) == 4
