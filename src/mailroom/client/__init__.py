"""A MESH client: send and receive through Mailroom, NHS England's MESH, or mesh-sandbox.

Send::

    from mailroom.client import MeshClient

    with MeshClient.from_profile() as mesh:          # MESH_* variables or ~/.config/mailroom/client.toml
        if mesh.check_authentication():
            mesh.send_file("BOB", "report.csv", "MY_WORKFLOW")

Receive, acknowledging each message only after it is safely handled::

    with MeshClient.from_profile() as mesh:
        for item in mesh.check_and_download():
            if item.is_report:
                alert(item)                           # a message you sent was not delivered
            else:
                process(item.read())

This package imports nothing else from Mailroom, so it can ship on its own.
"""

from ._auth import MeshAuth, build_token
from ._client import MeshClient
from ._config import DEFAULT_CHUNK_SIZE, MeshConfig, default_config_path, default_journal_dir, load_config
from ._errors import (
    AuthenticationError,
    ConfigError,
    MeshApiError,
    MeshError,
    MeshTLSError,
    MeshTransportError,
    MessageGoneError,
    MessageNotFoundError,
    ProtocolError,
    RateLimitedError,
    SendOutcomeUnknown,
    ServerError,
    UnknownRecipientError,
)
from ._http import RetryPolicy
from ._receiving import DownloadProgress
from ._sending import Progress
from ._types import Endpoint, InboxItem, Message, Report, SendResult, Tracking

__all__ = [
    "DEFAULT_CHUNK_SIZE",
    "AuthenticationError",
    "ConfigError",
    "DownloadProgress",
    "Endpoint",
    "InboxItem",
    "MeshApiError",
    "MeshAuth",
    "MeshClient",
    "MeshConfig",
    "MeshError",
    "MeshTLSError",
    "MeshTransportError",
    "Message",
    "MessageGoneError",
    "MessageNotFoundError",
    "Progress",
    "ProtocolError",
    "RateLimitedError",
    "Report",
    "RetryPolicy",
    "SendOutcomeUnknown",
    "SendResult",
    "ServerError",
    "Tracking",
    "UnknownRecipientError",
    "build_token",
    "default_config_path",
    "default_journal_dir",
    "load_config",
]
