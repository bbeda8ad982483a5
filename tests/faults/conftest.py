"""Fixtures of the fault suite. Run it on its own queue (``make test`` does):
DRAMATIQ_QUEUE=csrproxy-faults pytest tests/faults."""
from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass

import pika.exceptions
import pytest
import requests
from django.conf import settings
from dramatiq import get_broker

from dns_provisioning import powerdns
from dns_provisioning.models import ChallengeRecord
from signing.accounts import account_create, product_bind_account
from signing.models import CertificateRequest
from tests.csrs import ec_key, make_csr

from . import stack

SUMMARY: list[str] = []
PEBBLES = {"fast": (14100, {"PEBBLE_VA_NOSLEEP": "1"}),
           "nonce50": (14200, {"PEBBLE_VA_NOSLEEP": "1", "PEBBLE_WFE_NONCEREJECT": "50"}),
           "sleepy": (14300, {"PEBBLE_VA_SLEEPTIME": "3"})}


def pytest_terminal_summary(terminalreporter):
    if SUMMARY:
        terminalreporter.section("fault scenarios")
        for line in SUMMARY:
            terminalreporter.write_line(line)


@pytest.fixture(scope="session")
def base_env(django_db_setup) -> dict[str, str]:
    """Environment of our worker and sweeper processes: test database, fault PowerDNS."""
    db = settings.DATABASES["default"]
    url = (f"postgres://{db['USER']}:{db['PASSWORD']}@{db['HOST'] or '127.0.0.1'}:"
           f"{db['PORT'] or 5432}/{db['NAME']}")
    return {**os.environ, "DATABASE_URL": url, "DJANGO_SETTINGS_MODULE": "tests.settings",
            "DRAMATIQ_QUEUE": settings.DRAMATIQ_QUEUE, "PDNS_API_URL": stack.FAULT_PDNS_API,
            "PDNS_DNS_SERVERS": stack.FAULT_DNS, "SIGNING_LEASE_SECONDS": "5",
            "SWEEPER_GRACE_SECONDS": "2"}


@pytest.fixture(scope="session")
def fault_pdns(tmp_path_factory):
    process = stack.fault_powerdns(tmp_path_factory.mktemp("pdns")).start()
    stack.wait_until(lambda: stack.powerdns_up(settings.PDNS_API_KEY), 20, "fault PowerDNS")
    yield process
    process.stop()


@pytest.fixture(scope="session")
def pebbles(fault_pdns, tmp_path_factory) -> dict[str, tuple[int, bytes]]:
    """name -> (port, root). Each Pebble validates against the fault PowerDNS."""
    tmp = tmp_path_factory.mktemp("pebble")
    processes = {name: stack.pebble(tmp, port, **knobs).start()
                 for name, (port, knobs) in PEBBLES.items()}

    def up(port: int) -> bool:
        try:
            return requests.get(f"https://127.0.0.1:{port}/dir", timeout=1,
                                verify=str(stack.STACK / "tls" / "ca.pem")).ok
        except requests.RequestException:
            return False

    for name, (port, _) in PEBBLES.items():
        stack.wait_until(lambda port=port: up(port), 20, f"pebble {name}")
    yield {name: (port, stack.pebble_root(port)) for name, (port, _) in PEBBLES.items()}
    for process in processes.values():
        process.stop()


@pytest.fixture
def processes(base_env, tmp_path):
    """Start workers and sweepers; everything still running is stopped afterwards."""
    started: list[stack.Process] = []

    def start(kind: str, **env: str) -> stack.Process:
        args = (["run_worker", "--processes", "1", "--threads", "8"] if kind == "worker"
                else ["run_sweeper", "--interval", "1"])
        process = stack.manage(args, base_env | env, tmp_path / f"{kind}{len(started)}.log")
        started.append(process.start())
        if kind == "worker":
            stack.wait_until(lambda: b"ready for action" in process.log_path.read_bytes(), 60,
                             "worker start")
        return process

    yield start
    for process in started:
        process.stop()


@pytest.fixture(autouse=True)
def empty_queue(transactional_db):
    broker = get_broker()
    broker.declare_queue(settings.DRAMATIQ_QUEUE)
    try:
        broker.flush_all()
    except pika.exceptions.AMQPError:  # RabbitMQ was restarted: reconnect (enqueue does too)
        del broker.connection
        broker.flush_all()


@dataclass
class Scenario:
    """One fault scenario: a product on a chosen CA, submissions over HTTP, then checks."""

    name: str
    base_url: str
    token: str
    zone: str
    started: float = 0.0

    def submit(self, count: int, prefix: str = "h") -> list[tuple[int, str]]:
        session = requests.Session()
        session.headers["Authorization"] = f"Bearer {self.token}"
        self.started = self.started or time.monotonic()
        out = []
        for i in range(count):
            name = f"{prefix}{i}.{self.zone}"
            response = session.post(f"{self.base_url}/api/v1/certificates/",
                                    json={"csr": make_csr([name], ec_key()).decode()},
                                    timeout=30)
            assert response.status_code == 202, response.text
            out.append((response.json()["id"], name))
        return out

    def settle(self, submitted: list[tuple[int, str]], timeout: float) -> dict[str, int]:
        """Wait until every request has ended and cleaned up; check what "nothing lost" means,
        and record one summary line."""
        ids = [pk for pk, _ in submitted]
        done = CertificateRequest.Step.DONE

        def finished() -> bool:
            return CertificateRequest.objects.filter(pk__in=ids, step=done).count() == len(ids)

        try:
            stack.wait_until(finished, timeout, f"{self.name}: requests still running")
        finally:
            counts = self.record(submitted)
        return counts

    def record(self, submitted: list[tuple[int, str]]) -> dict[str, int]:
        ids = [pk for pk, _ in submitted]
        requests_ = CertificateRequest.objects.filter(pk__in=ids).select_related("certificate")
        counts = {"requests": len(ids), "valid": 0, "invalid": 0, "waiting": 0,
                  "certificates": 0}
        reasons: dict[str, int] = {}
        for req in requests_:
            if req.status in CertificateRequest.FINISHED and req.step == "done":
                counts[req.status] += 1
            else:
                counts["waiting"] += 1
            if req.status == "invalid":
                kind = (req.error or {}).get("type", "?").rsplit(":", 1)[-1]
                reasons[kind] = reasons.get(kind, 0) + 1
            counts["certificates"] += int(hasattr(req, "certificate"))
        owners = [f"request:{pk}" for pk in ids]
        counts["txt_records_live"] = ChallengeRecord.objects.filter(
            owner__in=owners, removed_at__isnull=True).count()
        counts["txt_values_served"] = sum(
            len(powerdns.query(settings.PDNS_DNS_SERVERS[0], f"_acme-challenge.{name}", "TXT"))
            for _, name in submitted)
        elapsed = time.monotonic() - self.started
        reason_text = ", ".join(f"{k}={v}" for k, v in sorted(reasons.items())) or "-"
        SUMMARY.append(
            f"{self.name}: {counts['requests']} requests, {counts['valid']} valid, "
            f"{counts['invalid']} invalid ({reason_text}), {counts['waiting']} waiting, "
            f"{counts['certificates']} certificates, {counts['txt_values_served']} TXT left, "
            f"{elapsed:.1f} s")
        return counts


@pytest.fixture
def scenario(live_server, acme_product, acme_token, pebbles, request) -> Callable[..., Scenario]:
    def make(name: str, pebble: str = "fast", directory_port: int | None = None) -> Scenario:
        port = directory_port or pebbles[pebble][0]
        account = account_create(
            name=f"{name}-{port}", directory_url=f"https://127.0.0.1:{port}/dir",
            tls_ca_file=str(stack.STACK / "tls" / "ca.pem"))
        product_bind_account(product=acme_product, account=account)
        return Scenario(name, live_server.url, acme_token, acme_product.zone)

    return make


def assert_nothing_lost(counts: dict[str, int], expect_valid: int | None = None) -> None:
    assert counts["waiting"] == 0
    assert counts["txt_records_live"] == 0 and counts["txt_values_served"] == 0
    assert counts["certificates"] == counts["valid"]  # one per valid request, none elsewhere
    if expect_valid is not None:
        assert counts["valid"] == expect_valid, counts
