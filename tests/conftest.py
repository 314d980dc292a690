"""Shared fixtures: real databases and payload stores, a fixed clock, in-process HTTP.

Two stacks: ``sqlite`` (SQLite in a temp dir and payload files, the embedded default) and
``postgres`` (PostgreSQL and an S3 bucket on a local S3 server, the scale-out set-up). Tests
under ``tests/web`` and ``tests/services`` run on both: the ``stack`` fixture is parametrised
for them (ids ``[sqlite]`` and ``[postgres]``; the latter marked ``postgres``, so
``-m "not postgres"`` runs the embedded stack alone). Elsewhere ``stack`` is ``sqlite``.

Per-test isolation stays cheap on both: SQLite tests copy one migrated template file;
PostgreSQL tests share one database migrated once per session and emptied (``DELETE``, no schema
work) before each test, and each test gets its own key prefix in one session bucket.
"""

from __future__ import annotations

import itertools
import shutil
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from fastapi.testclient import TestClient
from tests.support import postgres

from mailroom.auth.mesh_hmac import build_header
from mailroom.clock import FixedClock
from mailroom.container import Container, build_container
from mailroom.domain.mailboxes import Mailbox
from mailroom.settings import PayloadBackend, Settings, load_settings
from mailroom.storage.db import Database, create_database
from mailroom.storage.migrate import upgrade
from mailroom.storage.payloads.s3 import S3PayloadStore, client_for
from mailroom.web.app import create_app

if TYPE_CHECKING:
    from tests.support.s3 import S3Server

pytest_plugins = ["tests.support.s3"]  # the ``s3_server`` session fixture

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


#: Test folders whose tests run on every stack.
BOTH_STACKS = ("web", "services")
STACKS = [pytest.param("sqlite"), pytest.param("postgres", marks=pytest.mark.postgres)]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    parts = metafunc.definition.path.relative_to(Path(__file__).parent).parts
    if "stack" in metafunc.fixturenames and parts[0] in BOTH_STACKS:
        metafunc.parametrize("stack", STACKS, indirect=True)


@pytest.fixture
def stack(request: pytest.FixtureRequest) -> str:
    """``sqlite`` or ``postgres``: which metadata database and payload store the test runs on."""
    return str(getattr(request, "param", "sqlite"))


@pytest.fixture(scope="session")
def postgres_db() -> Iterator[Database]:
    """This session's PostgreSQL database, migrated once (skips, or fails under CI, if unreachable)."""
    postgres.require_postgres()
    with postgres.scratch_database("session") as url:
        db = create_database(url, pool_size=1, max_overflow=2)
        upgrade(db)
        yield db
        db.dispose()


@pytest.fixture(scope="session")
def s3_bucket(s3_server: S3Server) -> str:
    return s3_server.new_bucket()


@pytest.fixture(scope="session")
def s3_clients() -> Callable[[Settings], Any]:
    """``s3_clients(settings)`` → a boto3 client for its endpoint, made once per session
    (making one costs about 0.3 s, more than most tests)."""
    made: dict[tuple[str, str], Any] = {}

    def get(settings: Settings) -> Any:
        key = (settings.s3_endpoint_url, settings.s3_region)
        if key not in made:
            made[key] = client_for(settings)
        return made[key]

    return get


_prefixes = itertools.count(1)


@pytest.fixture
def settings(tmp_path: Path, stack: str, request: pytest.FixtureRequest) -> Settings:
    base = load_settings(
        {}, data_dir=tmp_path / "data", shared_key=SHARED_KEY, sandbox=True, sweep_interval=timedelta(0)
    )
    if stack == "sqlite":
        return base
    db: Database = request.getfixturevalue("postgres_db")
    postgres.empty(db)
    server: S3Server = request.getfixturevalue("s3_server")
    on_postgres = base.replace(
        database_url=db.engine.url.render_as_string(hide_password=False), db_pool_size=2, db_max_overflow=8
    )
    return server.settings(
        on_postgres, bucket=request.getfixturevalue("s3_bucket"), prefix=f"test{next(_prefixes)}"
    )


@pytest.fixture(scope="session")
def migrated_database(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One database migrated to head per session; tests get a copy (migrating costs ~30 ms)."""
    folder = tmp_path_factory.mktemp("template")
    build_container(load_settings({}, data_dir=folder, shared_key=SHARED_KEY)).close()
    return folder / "mailroom.db"


@pytest.fixture
def fresh_container(
    migrated_database: Path, clock: FixedClock, request: pytest.FixtureRequest
) -> Callable[[Settings], Container]:
    """``fresh_container(settings)`` → a container on a copy of the migrated template database
    (SQLite), or on the session's emptied database and the test's own bucket prefix."""

    def make(settings: Settings) -> Container:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        # SQLite: a copy of the template; PostgreSQL: the session database, emptied by ``settings``
        if not settings.database_url:
            shutil.copyfile(migrated_database, settings.data_dir / "mailroom.db")
        payloads = None
        if settings.payload_store is PayloadBackend.S3:
            client = request.getfixturevalue("s3_clients")(settings)
            payloads = S3PayloadStore(
                client, settings.s3_bucket, prefix=settings.s3_prefix, part_size=settings.s3_part_size
            )
        return build_container(settings, clock=clock, payloads=payloads, migrate=False)

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
