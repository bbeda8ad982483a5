"""The real stack for end-to-end tests: the live HTTP server, a separate Dramatiq worker
process on RabbitMQ, PowerDNS and Pebble (all started by ``make test``; nothing is mocked)."""
from __future__ import annotations

import datetime
import ipaddress
import os
import signal
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from django.conf import settings
from dramatiq import get_broker

from signing.accounts import account_create, product_bind_account
from signing.models import AcmeAccount

ROOT = Path(__file__).resolve().parents[2]


def _subprocess_env() -> dict[str, str]:
    """Environment for a process of ours that must use the test database and queue."""
    db = settings.DATABASES["default"]
    url = (f"postgres://{db['USER']}:{db['PASSWORD']}@{db['HOST'] or '127.0.0.1'}:"
           f"{db['PORT'] or 5432}/{db['NAME']}")
    return {**os.environ, "DATABASE_URL": url, "DJANGO_SETTINGS_MODULE": "tests.settings",
            "DRAMATIQ_QUEUE": settings.DRAMATIQ_QUEUE}


@dataclass(frozen=True)
class Worker:
    process: subprocess.Popen
    log_path: Path


@pytest.fixture(scope="session")
def worker(django_db_setup, tmp_path_factory) -> Worker:
    """A real worker process (``manage.py run_worker``) on the test database."""
    broker = get_broker()
    broker.declare_queue(settings.DRAMATIQ_QUEUE)
    broker.flush_all()  # messages of an earlier, aborted run name rows that no longer exist
    log_path = tmp_path_factory.mktemp("worker") / "worker.log"
    env = _subprocess_env()
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [sys.executable, "manage.py", "run_worker", "--processes", "1", "--threads", "8"],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
    deadline = time.monotonic() + 60
    try:
        while b"ready for action" not in log_path.read_bytes():
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("worker did not start:\n" + log_path.read_text())
            time.sleep(0.2)
        yield Worker(process, log_path)
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)


@dataclass(frozen=True)
class Ca:
    """One real CA of the test stack: how to order from it and the root its chains lead to."""

    name: str
    root_pem: bytes
    directory_url: str = ""  # empty: the default account (Pebble, from the settings)
    tls_ca_file: str = ""

    def bind(self, product) -> None:
        """Make ``product`` order from this CA."""
        if not self.directory_url:
            product_bind_account(product=product, account=None)
            return
        account = AcmeAccount.objects.filter(name=self.name).first() or account_create(
            name=self.name, directory_url=self.directory_url, tls_ca_file=self.tls_ca_file,
            contact_email="ops@csrproxy.test")
        product_bind_account(product=product, account=account)


# stack-up.sh writes these to .env, which the settings loaded into the environment.
@pytest.fixture(scope="session")
def pebble() -> Ca:
    """Pebble makes a new root at every start: fetch the one in force."""
    response = requests.get(f"{os.environ['PEBBLE_MGMT_URL']}/roots/0",
                            verify=settings.ACME_TLS_CA, timeout=10)
    response.raise_for_status()
    return Ca("pebble", response.content)


@pytest.fixture(scope="session")
def a2c() -> Ca:
    return Ca("a2c", Path(os.environ["A2C_ROOT"]).read_bytes(),
              os.environ["A2C_DIRECTORY_URL"], os.environ["A2C_TLS_CA"])


@pytest.fixture(scope="session")
def a2c_nodns() -> Ca:
    """acme2certifier asking a DNS server that does not exist: every dns-01 fails."""
    return Ca("a2c-nodns", Path(os.environ["A2C_ROOT"]).read_bytes(),
              os.environ["A2C_NODNS_DIRECTORY_URL"], os.environ["A2C_TLS_CA"])


@pytest.fixture(params=["pebble", "a2c"])
def ca(request) -> Ca:
    """Runs a test once against each CA."""
    return request.getfixturevalue(request.param)


@pytest.fixture
def stack(worker, live_server, transactional_db):
    """Everything at once: tests that take it issue real certificates."""
    return live_server.url


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _tls_material(directory: Path) -> tuple[Path, Path, Path]:
    """A throwaway CA and a certificate for 127.0.0.1 signed by it."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test TLS front CA")])
    ca_cert = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
               .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now).not_valid_after(now + datetime.timedelta(days=1))
               .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
               .sign(ca_key, hashes.SHA256()))
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
            .issuer_name(ca_name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now).not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
            .sign(ca_key, hashes.SHA256()))
    paths = directory / "ca.pem", directory / "server.pem", directory / "server.key"
    paths[0].write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return paths


@contextmanager
def _gunicorn(directory: Path, *tls_args: str, workers: int = 1, threads: int = 4,
              verify: str | bool = False):
    """gunicorn serving the service on a free loopback port, on the test database."""
    port = _free_port()
    scheme = "https" if tls_args else "http"
    log_path = directory / "gunicorn.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [str(Path(sys.executable).parent / "gunicorn"), "csrproxy.wsgi",
             "--bind", f"127.0.0.1:{port}", "--workers", str(workers), "--threads", str(threads),
             *tls_args],
            cwd=ROOT, env=_subprocess_env(), stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True)
    deadline = time.monotonic() + 60
    try:
        while True:
            try:
                requests.get(f"{scheme}://127.0.0.1:{port}/healthz", verify=verify, timeout=5)
                break
            except (requests.ConnectionError, requests.Timeout):
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("gunicorn did not start:\n" + log_path.read_text()) from None
                time.sleep(0.2)
        yield port
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)


@pytest.fixture(scope="session")
def tls_front(django_db_setup, tmp_path_factory):
    """gunicorn over HTTPS with a throwaway CA; yields (host, port, CA file)."""
    directory = tmp_path_factory.mktemp("tls")
    ca_file, cert_file, key_file = _tls_material(directory)
    with _gunicorn(directory, "--certfile", str(cert_file), "--keyfile", str(key_file),
                   verify=str(ca_file)) as port:
        yield "127.0.0.1", port, str(ca_file)


@pytest.fixture(scope="session")
def gunicorn_url(django_db_setup, tmp_path_factory) -> str:
    """The service as deployed: gunicorn, 2 processes of 8 threads."""
    with _gunicorn(tmp_path_factory.mktemp("gunicorn"), workers=2, threads=8) as port:
        yield f"http://127.0.0.1:{port}"
