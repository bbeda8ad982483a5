"""A private copy of the moving parts, so that faults can be injected without touching the
shared stack: a second PowerDNS on the same database, Pebbles with chaos knobs, a fault
proxy in front of Pebble, and worker and sweeper processes we can kill."""
from __future__ import annotations

import json
import os
import re
import signal
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[2]
STACK = ROOT / ".stack"
FAULT_DNS = "127.0.0.1:5363"
FAULT_PDNS_API = "http://127.0.0.1:8091"


def wait_until(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(what)
        time.sleep(0.1)


@dataclass
class Process:
    """A child process in its own process group, with its log."""

    argv: list[str]
    env: dict[str, str]
    log_path: Path
    cwd: Path = ROOT
    popen: subprocess.Popen | None = field(default=None, repr=False)

    def start(self) -> Process:
        log = open(self.log_path, "ab")  # noqa: SIM115 -- kept open by the child
        self.popen = subprocess.Popen(self.argv, cwd=self.cwd, env=self.env, stdout=log,
                                      stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        return self

    @property
    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> None:
        if not self.alive:
            return
        try:
            os.killpg(self.popen.pid, sig)
            self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.popen.pid, signal.SIGKILL)
            self.popen.wait(timeout=10)
        except ProcessLookupError:
            pass

    def kill(self) -> None:
        self.stop(signal.SIGKILL)


def fault_powerdns(tmp: Path) -> Process:
    """A second PowerDNS: same database as the shared one, its own ports."""
    conf = (STACK / "pdns" / "pdns.conf").read_text()
    conf = re.sub(r"^local-address=.*$", f"local-address={FAULT_DNS}", conf, flags=re.M)
    conf = re.sub(r"^webserver-port=.*$", "webserver-port=8091", conf, flags=re.M)
    conf = re.sub(r"^socket-dir=.*$", f"socket-dir={tmp}", conf, flags=re.M)
    (tmp / "pdns.conf").write_text(conf)
    return Process(["pdns_server", f"--config-dir={tmp}"], dict(os.environ), tmp / "pdns.log")


def powerdns_up(api_key: str) -> bool:
    try:
        return requests.get(f"{FAULT_PDNS_API}/api/v1/servers/localhost",
                            headers={"X-API-Key": api_key}, timeout=1).ok
    except requests.RequestException:
        return False


def pebble(tmp: Path, port: int, **knobs: str) -> Process:
    """A Pebble validating against the fault PowerDNS, with chaos knobs in its environment."""
    config = json.loads((STACK / "pebble" / "pebble-config.json").read_text())
    config["pebble"]["listenAddress"] = f"127.0.0.1:{port}"
    config["pebble"]["managementListenAddress"] = f"127.0.0.1:{port + 1000}"
    path = tmp / f"pebble-{port}.json"
    path.write_text(json.dumps(config))
    env = {k: v for k, v in os.environ.items() if not k.startswith("PEBBLE_")} | knobs
    return Process(["pebble", "-config", str(path), "-dnsserver", FAULT_DNS], env,
                   tmp / f"pebble-{port}.log")


def pebble_root(port: int) -> bytes:
    response = requests.get(f"https://127.0.0.1:{port + 1000}/roots/0",
                            verify=str(STACK / "tls" / "ca.pem"), timeout=5)
    response.raise_for_status()
    return response.content


class FaultProxy:
    """HTTPS proxy in front of a Pebble that answers some requests with errors instead.

    ``plan`` maps a path fragment (e.g. "new-order") to a list of canned answers consumed one
    per matching request: (status, problem type, Retry-After or None). Everything else is
    forwarded unchanged; the Host header is kept, so Pebble writes the proxy's URLs.
    """

    def __init__(self, upstream_port: int, port: int) -> None:
        self.upstream = f"https://127.0.0.1:{upstream_port}"
        self.plan: dict[str, list[tuple[int, str, int | None]]] = {}
        self.injected: list[tuple[str, int]] = []
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def do_GET(self) -> None:
                self._relay()

            def do_HEAD(self) -> None:
                self._relay()

            def do_POST(self) -> None:
                self._relay()

            def _relay(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                canned = proxy.take(self.path)
                if canned is not None:
                    status, kind, retry_after = canned
                    payload = json.dumps({"type": f"urn:ietf:params:acme:error:{kind}",
                                          "detail": f"injected by the fault proxy ({status})",
                                          "status": status}).encode()
                    self.send_response(status)
                    self.send_header("Content-Type", "application/problem+json")
                    self.send_header("Content-Length", str(len(payload)))
                    if retry_after is not None:
                        self.send_header("Retry-After", str(retry_after))
                    self.end_headers()
                    self.wfile.write(payload)
                    return
                upstream = requests.request(
                    self.command, proxy.upstream + self.path, data=body or None,
                    headers={k: v for k, v in self.headers.items()
                             if k.lower() not in ("content-length", "connection")},
                    verify=str(STACK / "tls" / "ca.pem"), timeout=30)
                self.send_response(upstream.status_code)
                for name, value in upstream.headers.items():
                    if name.lower() not in ("content-length", "connection",
                                            "transfer-encoding", "content-encoding"):
                        self.send_header(name, value)
                self.send_header("Content-Length", str(len(upstream.content)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(upstream.content)

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(STACK / "tls" / "localhost.pem", STACK / "tls" / "localhost.key")
        self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        self.port = port
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def take(self, path: str) -> tuple[int, str, int | None] | None:
        for fragment, answers in self.plan.items():
            if fragment in path and answers:
                answer = answers.pop(0)
                self.injected.append((fragment, answer[0]))
                return answer
        return None

    def __enter__(self) -> FaultProxy:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()


def manage(args: list[str], env: dict[str, str], log_path: Path) -> Process:
    return Process([sys.executable, "manage.py", *args], env, log_path)
