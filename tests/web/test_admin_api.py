"""The administration API in-process, on both stacks: MailStore's envelope, Basic auth and
privileges, the catalogue, arguments, long jobs polled by token, cancel, the audit log."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from tests.e2e.admin_harness import ENVELOPE_KEYS, ROOT, VIEWER

from mailroom.container import Container
from mailroom.domain.admin import ArgType, Privilege
from mailroom.services.admin_api import Arg, Function
from mailroom.services.jobs import JobContext, JobKind
from mailroom.web.app import create_app


@pytest.fixture
def settings(settings):
    """The administration API on, and a client locked out after three failures."""
    return settings.replace(admin_api=True, admin_lockout_failures=3)


@pytest.fixture
def api(settings, container: Container) -> Iterator[TestClient]:
    container.admin_users.add(*ROOT)
    container.admin_users.add(*VIEWER, privilege=Privilege.READ)
    with TestClient(create_app(settings, container)) as client:
        yield client


def call(api: TestClient, function: str, data: dict[str, Any] | None = None, *, user=ROOT, **kw: Any) -> Any:
    return api.post(f"/api/invoke/{function}", data=data or {}, auth=user, **kw)


def test_an_answer_is_the_seeds_envelope_with_its_no_cache_headers(api, container):
    response = call(api, "GetServerInfo")
    assert response.status_code == 200
    body = response.json()
    assert list(body) == ENVELOPE_KEYS
    assert body["error"] is None
    assert body["token"] is None
    assert body["statusCode"] == "succeeded"
    assert body["result"]["version"]
    assert body["result"]["machineName"]
    assert body["result"]["counts"]["mailboxes"] == 3
    assert response.headers["cache-control"].startswith("no-cache,private,no-store")
    assert response.headers["pragma"] == "no-cache"


def test_the_api_is_off_by_default(settings, container):
    with TestClient(create_app(settings.replace(admin_api=False), container)) as client:
        assert client.post("/api/invoke/GetServerInfo", auth=ROOT).status_code == 404
        assert client.get("/api/get-metadata", auth=ROOT).status_code == 404


@pytest.mark.parametrize("path", ["/api", "/api/", "/api/nothing/here", "/api/invoke"])
@pytest.mark.parametrize("method", ["GET", "POST"])
def test_an_unknown_api_path_is_a_404_envelope_never_a_redirect(api, path, method):
    response = api.request(method, path, auth=ROOT, follow_redirects=False)
    assert response.status_code == 404
    assert list(response.json()) == ENVELOPE_KEYS
    assert response.json()["error"]["message"] == "Not found"


@pytest.mark.parametrize(
    ("auth", "expected"),
    [
        (None, "Authentication required"),
        (("root", "wrong password"), "Invalid user name or password"),
        (("nobody", "correct horse battery"), "Invalid user name or password"),
    ],
)
def test_bad_credentials_are_401_with_a_basic_challenge(api, auth, expected):
    response = api.post("/api/invoke/GetServerInfo", auth=auth)
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Basic ")
    assert response.json()["error"]["message"] == expected
    assert response.json()["statusCode"] == "failed"


def test_mailbox_credentials_never_open_the_admin_api(api):
    assert call(api, "GetServerInfo", user=("ALICE", "password")).status_code == 401


def test_repeated_failures_lock_the_client_out_for_a_while(api):
    for _ in range(3):
        assert call(api, "GetServerInfo", user=("root", "nope nope")).status_code == 401
    locked = call(api, "GetServerInfo")  # even the right password, while locked out
    assert locked.status_code == 429
    assert int(locked.headers["retry-after"]) > 0


def test_read_only_administrators_call_only_what_changes_nothing(api, container):
    assert call(api, "GetMailboxes", user=VIEWER).status_code == 200
    refused = call(api, "CreateMailbox", {"mailboxId": "NEWBOX", "password": "pw"}, user=VIEWER)
    assert refused.status_code == 403
    assert "admin privilege" in refused.json()["error"]["message"]
    assert "NEWBOX" not in [box.mailbox_id for box in container.mailboxes.all()]


def test_the_catalogue_describes_every_function_the_server_dispatches(api, container):
    for method in ("GET", "POST"):
        body = api.request(method, "/api/get-metadata", auth=VIEWER).json()
        assert body["statusCode"] == "succeeded"
        names = [entry["name"] for entry in body["result"]]
        assert names == list(container.admin.registry.functions)
    entry = next(e for e in body["result"] if e["name"] == "CreateMailbox")
    assert entry["privilege"] == "admin"
    args = {arg["name"]: arg for arg in entry["args"]}
    assert args["mailboxId"] == {
        "name": "mailboxId",
        "type": "string",
        "nullable": False,
        "optional": False,
        "description": args["mailboxId"]["description"],
    }
    assert args["name"]["optional"]
    assert args["name"]["nullable"]
    assert {arg["type"] for e in body["result"] for arg in e["args"]} <= {"string", "number", "bool", "json"}


def test_a_mailbox_created_here_works_on_the_mesh_face_at_once(api, headers, auth):
    created = call(api, "CreateMailbox", {"mailboxId": "carol", "password": "carols secret", "name": "Carol"})
    assert created.json()["result"]["mailboxId"] == "CAROL"
    sent = api.post(
        "/messageexchange/ALICE/outbox",
        content=b"hello carol",
        headers=headers("ALICE", mex_to="CAROL", mex_workflowid="WF"),
    )
    assert sent.status_code == 202
    inbox = api.get("/messageexchange/CAROL/inbox", headers={"authorization": auth("CAROL", "carols secret")})
    assert inbox.json()["messages"] == [sent.json()["message_id"]]


def test_arguments_come_as_a_form_or_as_a_json_object(api):
    form = call(api, "GetMailboxes", {"filter": "al", "limit": "1"})
    as_json = api.post("/api/invoke/GetMailboxes", json={"filter": "al", "limit": 1}, auth=ROOT)
    assert form.json()["result"] == as_json.json()["result"]
    assert [box["mailboxId"] for box in form.json()["result"]["mailboxes"]] == ["ALICE"]


@pytest.mark.parametrize(
    ("function", "kwargs", "status", "words"),
    [
        ("NoSuchFunction", {"data": {}}, 404, "Unknown function"),
        ("GetMailboxInfo", {"data": {}}, 400, "required"),
        ("GetMailboxes", {"data": {"colour": "blue"}}, 400, "no argument 'colour'"),
        ("GetMailboxes", {"data": {"limit": "ten"}}, 400, "must be a number"),
        ("GetMailboxes", {"data": {"limit": "100000"}}, 400, "between"),
        ("GetMailboxes", {"data": {"offset": "1.5"}}, 400, "a whole number"),
        ("GetMailboxes", {"json": {"limit": 2.5}}, 400, "a whole number"),
        ("SetMailboxEnabled", {"data": {"mailboxId": "ALICE", "enabled": "yes"}}, 400, "true or false"),
        (
            "GetMailboxes",
            {"content": b"{not json", "headers": {"content-type": "application/json"}},
            400,
            "not valid JSON",
        ),
        (
            "GetMailboxes",
            {"content": b"[1, 2]", "headers": {"content-type": "application/json"}},
            400,
            "object",
        ),
        (
            "GetMailboxes",
            {"content": b"a=1&a=2", "headers": {"content-type": "application/x-www-form-urlencoded"}},
            400,
            "twice",
        ),
        (
            "GetMailboxes",
            {"content": b"\xff\xfe=1", "headers": {"content-type": "application/x-www-form-urlencoded"}},
            400,
            "form",
        ),
        ("GetMailboxes", {"content": b"x" * (2 * 1024 * 1024)}, 413, "larger"),
        (
            "GetMailboxes",
            {"content": b"<xml/>", "headers": {"content-type": "text/xml"}},
            415,
            "form or a JSON",
        ),
    ],
)
def test_bad_calls_get_the_envelopes_error_and_change_nothing(
    api, container, function, kwargs, status, words
):
    before = [box.mailbox_id for box in container.mailboxes.all()]
    response = api.post(f"/api/invoke/{function}", auth=ROOT, **kwargs)
    assert response.status_code == status
    body = response.json()
    assert list(body) == ENVELOPE_KEYS
    assert words in body["error"]["message"]
    assert isinstance(body["error"]["details"], str)
    assert [box.mailbox_id for box in container.mailboxes.all()] == before


def test_what_a_function_refuses_is_a_failed_status_in_a_200(api):
    response = call(api, "GetMailboxInfo", {"mailboxId": "NOBODY"})
    assert response.status_code == 200
    assert response.json()["statusCode"] == "failed"
    assert "does not exist" in response.json()["error"]["message"]
    refused = call(api, "DeleteMailbox", {"mailboxId": "ALICE"})  # holds nothing: deleted
    assert refused.json()["statusCode"] == "succeeded"


class Gate:
    """A long function the test steps through: it waits at each step until let through."""

    def __init__(self) -> None:
        self.steps = threading.Semaphore(0)

    def run(self, context: JobContext) -> dict[str, int]:
        total = int(context.arguments["steps"])
        for n in range(total):
            while not self.steps.acquire(timeout=0.05):
                context.check()
            context.log(f"step {n + 1} of {total}")
            context.progress((n + 1) * 100 // total, f"step {n + 1}")
        return {"steps": total}


@pytest.fixture
def gate(container: Container) -> Gate:
    gate = Gate()
    function = Function(
        "Stepped",
        "A job the test steps through.",
        Privilege.ADMIN,
        (Arg("steps", ArgType.NUMBER, "How many steps."),),
        job=gate.run,
    )
    container.admin.registry.add(function)
    kinds: Any = container.jobs.kinds
    kinds["Stepped"] = JobKind("Stepped", gate.run)
    return gate


def status(api: TestClient, token: str, known: int, timeout_ms: int = 10_000) -> dict[str, Any]:
    data = {"token": token, "lastKnownStatusVersion": str(known), "millisecondsTimeout": str(timeout_ms)}
    response = api.post("/api/get-status", data=data, auth=VIEWER)
    assert response.status_code == 200, response.text
    return dict(response.json())


def test_a_long_job_is_followed_by_token_to_its_end(api, gate):
    started = call(api, "Stepped", {"steps": "3"}).json()
    assert started["statusCode"] == "running"
    token, version = started["token"], started["statusVersion"]
    assert len(token) == 32
    log: list[str] = []
    while True:
        gate.steps.release()
        body = status(api, token, version)
        assert body["statusVersion"] > version  # answered because the status moved
        version = body["statusVersion"]
        log += (body["logOutput"] or "").splitlines()
        if body["statusCode"] != "running":
            break
        assert body["token"] == token
    assert body["statusCode"] == "succeeded"
    assert body["token"] is None
    assert body["result"] == {"steps": 3}
    assert log == ["step 1 of 3", "step 2 of 3", "step 3 of 3"]


def test_get_status_repeats_the_last_status_when_nothing_moves(api, gate):
    started = call(api, "Stepped", {"steps": "1"}).json()
    # past version 1 (queued): a runner has claimed it, and it then waits at the gate
    first = status(api, started["token"], 1, timeout_ms=5000)
    assert first["statusVersion"] == 2
    again = status(api, started["token"], first["statusVersion"], timeout_ms=200)
    assert again["statusVersion"] == first["statusVersion"]
    assert again["statusCode"] == "running"
    assert again["logOutput"] is None
    gate.steps.release()


def test_a_read_only_administrator_cancels_only_their_own_jobs(api, gate):
    mine = call(api, "VerifyStore", user=VIEWER).json()
    assert mine["statusCode"] == "running"
    assert api.post("/api/cancel-async", data={"token": mine["token"]}, auth=VIEWER).status_code == 200
    theirs = call(api, "Stepped", {"steps": "1"}).json()["token"]
    assert api.post("/api/cancel-async", data={"token": theirs}, auth=VIEWER).status_code == 403
    gate.steps.release()


def test_a_cancelled_job_ends_cancelled(api, gate):
    token = call(api, "Stepped", {"steps": "5"}).json()["token"]
    gate.steps.release()
    refused = api.post("/api/cancel-async", data={"token": token}, auth=VIEWER)
    assert refused.status_code == 403
    response = api.post("/api/cancel-async", data={"token": token}, auth=ROOT)
    assert response.status_code == 200
    version = 0
    while (body := status(api, token, version))["statusCode"] == "running":
        version = body["statusVersion"]
    assert body["statusCode"] == "cancelled"
    assert body["token"] is None


@pytest.mark.parametrize(
    "data",
    [
        {"token": "0" * 32},
        {"token": "../../etc/passwd"},
        {"token": "x" * 5000},
    ],
)
def test_an_unknown_token_is_404_with_the_envelopes_error(api, data):
    response = api.post("/api/get-status", data=data, auth=VIEWER)
    assert response.status_code == 404
    assert "Unknown or expired job token" in response.json()["error"]["message"]


@pytest.mark.parametrize(
    "data",
    [
        {"token": "0" * 32, "lastKnownStatusVersion": "-1"},
        {"token": "0" * 32, "millisecondsTimeout": "-5"},
        {"token": "0" * 32, "millisecondsTimeout": "1e99"},
        {"token": "0" * 32, "lastKnownStatusVersion": "9" * 40},
        {},
    ],
)
def test_bad_status_arguments_are_400(api, data):
    response = api.post("/api/get-status", data=data, auth=VIEWER)
    assert response.status_code == 400
    assert response.json()["error"]["message"]


def test_every_call_is_audited_without_its_secrets(api):
    call(api, "CreateMailbox", {"mailboxId": "DAVE", "password": "daves secret"})
    call(api, "CreateMailbox", {"mailboxId": "EVE", "password": "x"}, user=VIEWER)
    call(api, "GetServerInfo", user=("root", "not the password"))
    entries = call(api, "GetAuditLog", {"limit": "10"}).json()["result"]
    # newest first; the GetAuditLog call itself is recorded once it has answered
    assert [(e["userName"], e["function"], e["outcome"]) for e in entries[:3]] == [
        ("root", "GetServerInfo", "refused"),
        ("viewer", "CreateMailbox", "refused"),
        ("root", "CreateMailbox", "succeeded"),
    ]
    created = entries[2]
    assert created["arguments"] == {"mailboxId": "DAVE", "password": "[redacted]"}
    assert created["client"] == "testclient"
    text = str(entries)
    assert "daves secret" not in text
    assert "not the password" not in text
    assert call(api, "GetAuditLog", {"userName": "viewer"}).json()["result"][0]["function"] == "CreateMailbox"


def test_admin_users_are_managed_through_the_api_with_hashed_passwords(api, container):
    created = call(
        api, "CreateAdminUser", {"userName": "ops", "password": "ops password", "privilege": "read"}
    )
    assert created.json()["result"]["privilege"] == "read"
    assert call(api, "GetServerInfo", user=("ops", "ops password")).status_code == 200
    call(api, "SetAdminUserPassword", {"userName": "ops", "password": "another one"})
    assert call(api, "GetServerInfo", user=("ops", "ops password")).status_code == 401
    assert call(api, "GetServerInfo", user=("ops", "another one")).status_code == 200
    with container.db.read() as conn:
        stored = conn.exec_driver_sql("SELECT password_hash FROM admin_users WHERE name = 'ops'").scalar_one()
    assert stored.startswith("$argon2id$")
    assert "another one" not in stored
    assert (
        call(api, "DeleteAdminUser", {"userName": "root"}).json()["statusCode"] == "failed"
    )  # the last admin
    assert call(api, "DeleteAdminUser", {"userName": "ops"}).json()["statusCode"] == "succeeded"
    assert [u["userName"] for u in call(api, "GetAdminUsers").json()["result"]] == ["root", "viewer"]


def test_purge_expired_runs_as_a_job_and_reports_what_it_did(api):
    started = call(api, "PurgeExpired").json()
    assert started["statusCode"] == "running"
    version = 0
    while (body := status(api, started["token"], version))["statusCode"] == "running":
        version = body["statusVersion"]
    assert body["statusCode"] == "succeeded"
    assert body["result"]["expired"] == 0
    jobs = call(api, "GetJobs", {"function": "PurgeExpired"}).json()["result"]
    assert jobs[0]["token"] == started["token"]
    assert jobs[0]["owner"] == "root"
    assert jobs[0]["state"] == "succeeded"
