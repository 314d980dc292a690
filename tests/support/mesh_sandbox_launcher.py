"""Serve NHS's mesh-sandbox with chosen mailboxes/workflows, over TLS, with uvicorn.

Run with the *sandbox's* interpreter (a separate venv that has ``mesh-sandbox``), not
Mailroom's: this file imports only the standard library, uvicorn and mesh_sandbox.

mesh-sandbox reads ``mailboxes.jsonl`` and ``workflows.jsonl`` only from its own package
folder (``mesh_sandbox/store/data``); its Docker setup mounts files over them. Rather than
edit the installed package, we point the store at ``--data-dir`` before it loads.
``MAILBOXES_DATA_DIR`` only moves the message files of ``STORE_MODE=file``.

Store, auth and key come from the usual sandbox environment variables
(``STORE_MODE``, ``AUTH_MODE``, ``SHARED_KEY``).
"""

from __future__ import annotations

import argparse
from typing import Any


def _point_store_at(data_dir: str) -> None:
    from mesh_sandbox.store.canned_store import CannedStore  # type: ignore[import-not-found,unused-ignore]

    original = CannedStore.initialise

    def initialise(self: Any) -> None:
        self._canned_data_dir = data_dir
        original(self)

    CannedStore.initialise = initialise  # type: ignore[method-assign,unused-ignore]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--data-dir", required=True, help="folder with mailboxes.jsonl, workflows.jsonl")
    parser.add_argument("--certfile")
    parser.add_argument("--keyfile")
    parser.add_argument("--ca-certs", help="CA bundle to verify client certificates with")
    parser.add_argument("--require-client-cert", action="store_true", help="refuse clients without one")
    args = parser.parse_args()

    _point_store_at(args.data_dir)

    import uvicorn

    uvicorn.run(
        "mesh_sandbox.api:app",
        host=args.host,
        port=args.port,
        ssl_certfile=args.certfile,
        ssl_keyfile=args.keyfile,
        ssl_ca_certs=args.ca_certs,
        ssl_cert_reqs=2 if args.require_client_cert else (1 if args.ca_certs else 0),  # ssl.CERT_*
        log_level="info",
    )


if __name__ == "__main__":
    main()
