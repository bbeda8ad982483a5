"""The real stack for end-to-end tests: the live HTTP server, a separate Dramatiq worker
process on RabbitMQ, PowerDNS and Pebble (all started by ``make test``; nothing is mocked)."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
from django.conf import settings
from dramatiq import get_broker

ROOT = Path(__file__).resolve().parents[2]


def _database_url() -> str:
    db = settings.DATABASES["default"]
    return (f"postgres://{db['USER']}:{db['PASSWORD']}@{db['HOST'] or '127.0.0.1'}:"
            f"{db['PORT'] or 5432}/{db['NAME']}")


@pytest.fixture(scope="session")
def worker(django_db_setup, tmp_path_factory):
    """A real worker process (``manage.py run_worker``) on the test database."""
    broker = get_broker()
    broker.declare_queue(settings.DRAMATIQ_QUEUE)
    broker.flush_all()  # messages of an earlier, aborted run name rows that no longer exist
    log_path = tmp_path_factory.mktemp("worker") / "worker.log"
    env = {**os.environ, "DATABASE_URL": _database_url(),
           "DJANGO_SETTINGS_MODULE": "tests.settings", "DRAMATIQ_QUEUE": settings.DRAMATIQ_QUEUE}
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [sys.executable, "manage.py", "run_worker", "--processes", "1", "--threads", "8"],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
    deadline = time.monotonic() + 60
    while b"ready for action" not in log_path.read_bytes():
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError("worker did not start:\n" + log_path.read_text())
        time.sleep(0.2)
    yield process
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
    sys.stderr.write(f"worker log: {log_path}\n")


@pytest.fixture(scope="session")
def pebble_root() -> bytes:
    """Pebble makes a new root at every start: fetch the one in force."""
    # stack-up.sh writes it to .env, which the settings loaded into the environment
    mgmt = os.environ["PEBBLE_MGMT_URL"]
    response = requests.get(f"{mgmt}/roots/0", verify=settings.ACME_TLS_CA, timeout=10)
    response.raise_for_status()
    return response.content


@pytest.fixture
def stack(worker, live_server, transactional_db):
    """Everything at once: tests that take it issue real certificates."""
    return live_server.url
