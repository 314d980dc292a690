"""``MeshClient``: the send and receive patterns of MESH, over one connection to one mailbox."""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from types import TracebackType
from typing import IO, Any, overload
from urllib.parse import quote

import httpx

from ._config import DEFAULT_CHUNK_SIZE, MeshConfig, default_journal_dir, load_config
from ._errors import AuthenticationError, ProtocolError
from ._http import RetryPolicy, Session
from ._receiving import DownloadProgress, Received, Receiver
from ._sending import Progress, Sender, SendOptions
from ._types import Endpoint, InboxItem, SendResult, Tracking

PathLike = str | os.PathLike[str]


class MeshClient:
    """A connection to one MESH mailbox: Mailroom, NHS's MESH, or NHS's mesh-sandbox.

    ``cert``/``key`` are the client certificate and key for mutual TLS and ``ca`` the CA
    bundle that signs the server's certificate. Every request carries a fresh ``NHSMESH``
    token. Use as a context manager, or call :meth:`close`.
    """

    def __init__(
        self,
        url: str,
        mailbox: str,
        password: str,
        shared_key: str,
        *,
        cert: PathLike | None = None,
        key: PathLike | None = None,
        ca: PathLike | None = None,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        journal_dir: PathLike | None = None,
        timeout: float = 600.0,
        retry: RetryPolicy | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        config = MeshConfig(
            url=url,
            mailbox=mailbox,
            password=password,
            shared_key=shared_key,
            cert=Path(cert) if cert else None,
            key=Path(key) if key else None,
            ca=Path(ca) if ca else None,
            chunk_size=chunk_size,
            journal_dir=Path(journal_dir) if journal_dir else None,
            timeout=timeout,
        )
        self._init(config, retry, transport)

    def _init(
        self, config: MeshConfig, retry: RetryPolicy | None, transport: httpx.BaseTransport | None
    ) -> None:
        self.config = config
        self._session = Session(config, retry=retry, transport=transport)
        self._sender = Sender(self._session, config.journal_dir or default_journal_dir())
        self._receiver = Receiver(self._session)

    @classmethod
    def from_config(
        cls,
        config: MeshConfig,
        *,
        retry: RetryPolicy | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> MeshClient:
        client = cls.__new__(cls)
        client._init(config, retry, transport)
        return client

    @classmethod
    def from_profile(
        cls,
        profile: str | None = None,
        *,
        config_file: PathLike | None = None,
        environ: Mapping[str, str] | None = None,
        retry: RetryPolicy | None = None,
        **overrides: Any,
    ) -> MeshClient:
        """Settings from a TOML profile, then ``MESH_*`` variables, then ``overrides``
        (see :func:`load_config`)."""
        path = Path(config_file) if config_file else None
        return cls.from_config(
            load_config(profile, config_file=path, environ=environ, **overrides), retry=retry
        )

    def close(self) -> None:
        self._session.close()

    def __enter__(self) -> MeshClient:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    @property
    def mailbox(self) -> str:
        return self.config.mailbox

    # -- handshake -------------------------------------------------------------------------------

    def handshake(self) -> None:
        """Validate the mailbox ("check authentication"); raises :class:`AuthenticationError`."""
        self._session.request("POST", f"/messageexchange/{self.mailbox}")

    def check_authentication(self) -> bool:
        """True if the server accepts this mailbox's credentials, False if it refuses them.
        MESH asks clients to do this at the start of each polling run (and at least daily)."""
        try:
            self.handshake()
        except AuthenticationError:
            return False
        return True

    # -- sending ---------------------------------------------------------------------------------

    def send_file(
        self,
        recipient: str,
        path: PathLike,
        workflow_id: str,
        *,
        subject: str | None = None,
        local_id: str | None = None,
        file_name: str | None = None,
        content_type: str | None = None,
        encrypted: bool = False,
        compressed: bool = False,
        checksum: str | None = None,
        partner_id: str | None = None,
        gzip: bool = False,
        chunk_size: int | None = None,
        progress: Progress | None = None,
    ) -> SendResult:
        """Send a file, chunked when larger than ``chunk_size``, reading one block at a time.
        ``progress`` is called with the bytes sent as they go (see :data:`Progress`).

        ``gzip`` compresses each chunk on the way (``Content-Encoding: gzip``); ``compressed``
        and ``encrypted`` only set MESH's flags about what your application did to the
        content. An interrupted send of the same unchanged file resumes from the chunks the
        server already has (see the resume journal in the docs). ``file_name`` defaults to the
        file's name.
        """
        source = Path(path)
        options = SendOptions(
            recipient, workflow_id, subject, local_id, file_name or source.name, content_type,
            encrypted, compressed, checksum, partner_id, gzip, chunk_size,
        )  # fmt: skip
        return self._sender.send_path(source, options, progress)

    def send_bytes(self, recipient: str, data: bytes, workflow_id: str, **options: Any) -> SendResult:
        """Send ``data``; the keyword options are those of :meth:`send_file`."""
        progress = options.pop("progress", None)
        return self._sender.send_bytes(data, SendOptions(recipient, workflow_id, **options), progress)

    def send_stream(self, recipient: str, stream: IO[bytes], workflow_id: str, **options: Any) -> SendResult:
        """Send what a binary stream yields. A seekable stream is read in place; any other is
        first copied to a temporary file (so chunks can be retried), never into memory."""
        progress = options.pop("progress", None)
        return self._sender.send_stream(stream, SendOptions(recipient, workflow_id, **options), progress)

    # -- receiving -------------------------------------------------------------------------------

    def check_inbox(self, workflow_filter: str | None = None) -> list[str]:
        """Every message id waiting in the inbox, following the server's pages."""
        return self._receiver.list_all(workflow_filter)

    def inbox_details(self, workflow_filter: str | None = None) -> list[InboxItem]:
        """Every waiting message with its sender, subject, file name, size (where the server
        says) and time, from one ``HEAD`` request per message; nothing is downloaded or
        acknowledged. Messages that leave the inbox meanwhile are left out."""
        described = (self._receiver.describe(message_id) for message_id in self.check_inbox(workflow_filter))
        return [item for item in described if item is not None]

    def inbox_pages(
        self, workflow_filter: str | None = None, max_results: int | None = None
    ) -> Iterator[list[str]]:
        """The inbox one page (at most ``max_results`` ids) at a time."""
        return self._receiver.pages(workflow_filter, max_results)

    def download_message(
        self,
        message_id: str,
        folder_or_stream: PathLike | IO[bytes],
        *,
        progress: DownloadProgress | None = None,
    ) -> Received:
        """Download a message into a folder (as ``{id}.dat`` plus ``{id}.json`` metadata;
        resumable, fsynced, renamed into place) or into a binary stream you own.

        Returns a :class:`Message`, or a :class:`Report` for a non-delivery report. Does not
        acknowledge: call :meth:`ack_download_message` once you have processed it.
        ``progress`` is called as the bytes arrive (see :data:`DownloadProgress`).
        """
        if isinstance(folder_or_stream, (str, os.PathLike)):
            return self._receiver.to_folder(message_id, Path(folder_or_stream), progress)
        return self._receiver.to_stream(message_id, folder_or_stream, progress)

    def ack_download_message(self, message_id: str) -> None:
        """Acknowledge: the message leaves the inbox. Safe to repeat."""
        self._receiver.ack(message_id)

    @overload
    def check_and_download(
        self,
        folder: None = None,
        *,
        workflow_filter: str | None = None,
        progress: DownloadProgress | None = None,
    ) -> Iterator[Received]: ...

    @overload
    def check_and_download(
        self,
        folder: PathLike,
        *,
        workflow_filter: str | None = None,
        progress: DownloadProgress | None = None,
    ) -> list[Received]: ...

    def check_and_download(
        self,
        folder: PathLike | None = None,
        *,
        workflow_filter: str | None = None,
        progress: DownloadProgress | None = None,
    ) -> Iterator[Received] | list[Received]:
        """Receive everything waiting, acknowledging each message only once it is handled.

        With a ``folder``: saves each message there and acknowledges it once it is safely on
        disk; returns what was saved (reports included). Without: yields each message (its
        ``body`` is an open temporary file) and acknowledges it when you ask for the next one,
        i.e. after your processing returned without error. If your code raises, or breaks out
        of the loop, the current message is not acknowledged and stays in the inbox.
        ``progress`` is called as each message's bytes arrive (see :data:`DownloadProgress`).
        """
        if folder is not None:
            return self._receiver.save_all(Path(folder), workflow_filter, progress)
        return self._receiver.each(workflow_filter, progress)

    # -- tracking and lookup ---------------------------------------------------------------------

    def track(self, message_id: str) -> Tracking:
        """Status of a message this mailbox sent."""
        url = f"/messageexchange/{self.mailbox}/outbox/tracking"
        body = self._session.request("GET", url, params={"messageID": message_id}).json()
        if not isinstance(body, dict):
            raise ProtocolError(f"tracking answered {body!r:.200}")
        return Tracking.from_v2(body) if "message_id" in body else Tracking.from_v1(body)

    def track_by_local_id(self, local_id: str) -> Tracking:
        """Status of the message this mailbox sent with ``Mex-LocalID: local_id`` (deprecated
        in MESH but widely served). A local id used for several messages raises an error."""
        url = f"/messageexchange/{self.mailbox}/outbox/tracking/{quote(local_id, safe='')}"
        response = self._session.request("GET", url, headers={"Accept": "application/json"}, ok=(200,))
        return Tracking.from_v1(response.json())

    def lookup(self, ods_code: str, workflow_id: str) -> list[Endpoint]:
        """Mailboxes of organisation ``ods_code`` that receive ``workflow_id``."""
        url = f"/messageexchange/endpointlookup/{quote(ods_code, safe='')}/{quote(workflow_id, safe='')}"
        body = self._session.request("GET", url).json()
        results = body.get("results", []) if isinstance(body, dict) else []
        return [
            Endpoint(
                str(item.get("mailbox_id") or item.get("address")),
                item.get("mailbox_name") or item.get("description"),
            )
            for item in results
            if isinstance(item, dict)
        ]
