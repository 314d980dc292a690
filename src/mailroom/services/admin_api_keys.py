"""The administration API's functions for API keys of the JSON messaging API: the same
operations as ``mailroom token create|list|revoke`` (``ApiTokenService``)."""

from __future__ import annotations

from typing import Any

from mailroom.domain.admin import ArgType, Privilege
from mailroom.domain.mailboxes import normalise_mailbox_id
from mailroom.errors import ValidationFailed
from mailroom.services.admin_api import Arg, Call, Function
from mailroom.services.admin_messages import iso
from mailroom.services.api_tokens import ApiKeyInfo, ApiTokenService

S, B = ArgType.STRING, ArgType.BOOL


def key_record(info: ApiKeyInfo) -> dict[str, Any]:
    """A key as the API shows it: never its secret (which is not stored)."""
    return {
        "keyId": info.key_id,
        "mailboxId": info.mailbox_id,
        "readOnly": info.read_only,
        "label": info.label,
        "created": iso(info.created_at),
        "lastUsed": iso(info.last_used_at),
        "revoked": iso(info.revoked_at),
    }


def _mailbox_id(raw: str) -> str:
    normal = normalise_mailbox_id(raw)
    if normal is None:
        raise ValidationFailed(
            "body", "mailboxId", "a mailbox id is 1-100 letters, digits, _ or -", value=raw[:100]
        )
    return normal


def api_key_functions(tokens: ApiTokenService) -> list[Function]:
    def create(call: Call) -> dict[str, Any]:
        made = tokens.create_key(
            _mailbox_id(call.args["mailboxId"]),
            read_only=call.args["readOnly"],
            label=call.args["label"] or "",
        )
        return {**key_record(made.info), "secret": made.secret}

    def list_keys(call: Call) -> list[dict[str, Any]]:
        raw = call.args["mailboxId"]
        return [key_record(info) for info in tokens.list_keys(None if raw is None else _mailbox_id(raw))]

    def revoke(call: Call) -> None:
        tokens.revoke_key(call.args["keyId"])

    key_id = Arg("keyId", S, "The key's id (`tokenID`).")
    return [
        Function(
            "CreateApiKey",
            "Create an API key for a mailbox's JSON messaging API logins (`tokenID`, `tokenSecret`). "
            "The answer holds the secret, this once: only its SHA-256 digest is stored. At most 10 "
            "live keys per mailbox.",
            Privilege.ADMIN,
            (
                Arg("mailboxId", S, "The mailbox id (upper-cased)."),
                Arg(
                    "readOnly",
                    B,
                    "Logins with the key may read, not send or change.",
                    optional=True,
                    default=False,
                ),
                Arg("label", S, "What the key is for.", optional=True, nullable=True, default=""),
            ),
            run=create,
            group="API keys",
        ),
        Function(
            "ListApiKeys",
            "API keys (revoked ones too), of every mailbox or of one, by mailbox then age; never secrets.",
            Privilege.READ,
            (Arg("mailboxId", S, "Only this mailbox's keys.", optional=True, nullable=True, default=None),),
            run=list_keys,
            group="API keys",
        ),
        Function(
            "RevokeApiKey",
            "Revoke an API key and end every login made with it: its access tokens stop working on "
            "every server within `api_revocation_ttl`.",
            Privilege.ADMIN,
            (key_id,),
            run=revoke,
            group="API keys",
        ),
    ]
