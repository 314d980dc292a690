"""Administration input that a column cannot hold is a validation error, not a database error."""

from __future__ import annotations

import pytest

from mailroom.domain.mailboxes import Mailbox
from mailroom.errors import ValidationFailed


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("mailbox_name", "n" * 501),
        ("ods_code", "O" * 101),
        ("org_name", "bad\x00name"),
        ("password", "p" * 501),
    ],
)
def test_mailbox_text_a_column_cannot_hold_is_refused(container, field, value):
    fields = {"mailbox_name": "", "password": "pw", "ods_code": "", "org_name": "", field: value}
    with pytest.raises(ValidationFailed) as refused:
        container.mailboxes.add(Mailbox("CAROL", **fields))
    assert refused.value.name == field
    assert [box.mailbox_id for box in container.mailboxes.all()] == ["ALICE", "BARRY", "BOB"]


def test_workflow_id_longer_than_its_column_is_refused(container):
    with pytest.raises(ValidationFailed):
        container.mailboxes.import_workflows([{"workflow_id": "W" * 301, "senders": ["ALICE"]}])
    container.mailboxes.import_workflows([{"workflow_id": "W" * 300, "senders": ["ALICE"]}])
