"""Helpers for the JSON messaging API's tests: logging in through ``/authorize``."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

PASSWORD = "password"


def login(client: TestClient, mailbox: str, password: str = PASSWORD) -> str:
    response = client.post("/authorize", json={"username": mailbox, "password": password})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    assert body["api_token"] == body["apiToken"]
    return str(body["apiToken"])
