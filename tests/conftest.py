"""Shared fixtures: real SQLite in a temp dir, real payload files, a fixed clock, in-process HTTP."""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from mailroom.auth.mesh_hmac import build_header
from mailroom.clock import FixedClock
from mailroom.container import Container, build_container
from mailroom.domain.mailboxes import Mailbox
from mailroom.settings import Settings, load_settings
from mailroom.web.app import create_app

SHARED_KEY = "TestKey"
PASSWORD = "password"
MAILBOXES = (
    Mailbox("ALICE", "TESTMB1", PASSWORD, ods_code="X26", org_code="X26", billing_entity="England"),
    Mailbox("BOB", "TESTMB2", PASSWORD, ods_code="X26", org_code="X26", billing_entity="Wales"),
    Mailbox("BARRY", "TESTMB3", PASSWORD, ods_code="X27", org_code="X27", billing_entity="England"),
)
WORKFLOWS = [
    {"workflow_id": "RESTRICTED_WORKFLOW", "senders": ["ALICE"], "receivers": ["BOB"]},
    {"workflow_id": "ANOTHER_WORKFLOW", "senders": ["BOB"], "receivers": ["BARRY", "ALICE"]},
]

V2 = "application/vnd.mesh.v2+json"

AuthFactory = Callable[..., str]


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(datetime.now(UTC).replace(second=0, microsecond=0))


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return load_settings(
        {}, data_dir=tmp_path / "data", shared_key=SHARED_KEY, sandbox=True, sweep_interval=timedelta(0)
    )


@pytest.fixture(scope="session")
def migrated_database(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One database migrated to head per session; tests get a copy (migrating costs ~30 ms)."""
    folder = tmp_path_factory.mktemp("template")
    build_container(load_settings({}, data_dir=folder, shared_key=SHARED_KEY)).close()
    return folder / "mailroom.db"


@pytest.fixture
def fresh_container(migrated_database: Path, clock: FixedClock) -> Callable[[Settings], Container]:
    """``fresh_container(settings)`` → a container on a copy of the migrated template database."""

    def make(settings: Settings) -> Container:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(migrated_database, settings.data_dir / "mailroom.db")
        return build_container(settings, clock=clock, migrate=False)

    return make


@pytest.fixture
def container(settings: Settings, fresh_container: Callable[[Settings], Container]) -> Iterator[Container]:
    built = fresh_container(settings)
    for mailbox in MAILBOXES:
        built.mailboxes.add(mailbox)
    built.mailboxes.import_workflows(WORKFLOWS)
    yield built
    built.close()


@pytest.fixture
def client(settings: Settings, container: Container) -> Iterator[TestClient]:
    with TestClient(create_app(settings, container)) as test_client:
        yield test_client


@pytest.fixture
def auth(clock: FixedClock) -> AuthFactory:
    """``auth("ALICE")`` → a fresh, valid ``Authorization`` header value at the clock's time."""

    def make(
        mailbox: str, password: str = PASSWORD, *, key: str = SHARED_KEY, at: datetime | None = None
    ) -> str:
        return build_header(mailbox, password, key, nonce=str(uuid.uuid4()), at=at or clock.now())

    return make


@pytest.fixture
def headers(auth: AuthFactory) -> Callable[..., dict[str, str]]:
    """``headers("ALICE", v2=True, **{"mex-to": "BOB"})`` → request headers with fresh auth."""

    def make(mailbox: str, *, v2: bool = True, **extra: str) -> dict[str, str]:
        built = {"authorization": auth(mailbox)}
        if v2:
            built["accept"] = V2
        built.update({name.replace("_", "-"): value for name, value in extra.items()})
        return built

    return make
