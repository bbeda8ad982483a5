#!/usr/bin/env python3
"""Serve acme2certifier's own WSGI application on loopback, threaded, over TLS.

acme2certifier ships a WSGI app whose ``__main__`` binds 0.0.0.0:80 in plain HTTP; the tests
need it on a loopback port with TLS. Only the serving is ours; the ACME server is unmodified.

Environment: ACME_SRV_CONFIGFILE (read by acme2certifier), A2C_LISTEN (host:port),
A2C_TLS_CERT and A2C_TLS_KEY.
"""
from __future__ import annotations

import os
import signal
import socketserver
import ssl
import sys
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer


class _Server(socketserver.ThreadingMixIn, WSGIServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128


class _Handler(WSGIRequestHandler):
    def get_environ(self):
        environ = super().get_environ()
        # acme2certifier builds its URLs from the WSGI scheme: make them https://
        environ["HTTPS"] = "on"
        environ["wsgi.url_scheme"] = "https"
        return environ

    def address_string(self) -> str:
        return self.client_address[0]  # no reverse DNS lookups

    def log_message(self, fmt: str, *args) -> None:
        sys.stderr.write(f"access {self.address_string()} {fmt % args}\n")


def main() -> int:
    from acme2certifier.share import acme2certifier_wsgi  # boots acme2certifier (config, DB)

    host, port = os.environ.get("A2C_LISTEN", "127.0.0.1:22000").rsplit(":", 1)
    server = _Server((host, int(port)), _Handler)
    server.set_app(acme2certifier_wsgi.application)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(os.environ["A2C_TLS_CERT"], os.environ["A2C_TLS_KEY"])
    server.socket = context.wrap_socket(server.socket, server_side=True)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    print(f"acme2certifier on https://{host}:{port}/directory", file=sys.stderr, flush=True)
    try:
        server.serve_forever()
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
