"""A tiny stdlib HTTPS server answering ``GET /_ping``, used to test the harness itself.

With ``--client-ca`` it *requires* a client certificate signed by that CA, which lets a
test prove that the generated client certificate chains to the generated CA.
"""

from __future__ import annotations

import argparse
import json
import signal
import ssl
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import FrameType


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.path != "/_ping":
            self.send_error(404)
            return
        body = json.dumps({"status": "running", "outcome": "Yes"}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def _context(args: argparse.Namespace) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(args.certfile, args.keyfile)
    if args.client_ca:
        context.load_verify_locations(args.client_ca)
        context.verify_mode = ssl.CERT_REQUIRED
    return context


def _stop(signum: int, frame: FrameType | None) -> None:
    print(f"got signal {signum}, stopping", flush=True)
    sys.exit(0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--certfile", required=True)
    parser.add_argument("--keyfile", required=True)
    parser.add_argument("--client-ca")
    args = parser.parse_args()

    signal.signal(signal.SIGTERM, _stop)
    server = ThreadingHTTPServer(("127.0.0.1", args.port), _Handler)
    server.socket = _context(args).wrap_socket(server.socket, server_side=True)
    print(f"ping server listening on {args.port}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
