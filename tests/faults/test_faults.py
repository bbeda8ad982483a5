"""Fault injection on the real stack. Every scenario must end with every request `valid` or
`invalid` with the right reason, at most one certificate per request, the challenge TXT
RRsets back to their baseline, and no request waiting forever. One summary line each."""
from __future__ import annotations

import subprocess
import time
from datetime import timedelta

import pytest
import requests
from django.conf import settings
from django.utils import timezone

from dns_provisioning import powerdns
from signing.models import CertificateRequest, RequestEvent

from . import stack
from .conftest import SUMMARY, assert_nothing_lost

pytestmark = pytest.mark.faults


def test_pebble_rejecting_half_of_all_nonces(scenario, processes):
    run = scenario("nonce rejection 50%", pebble="nonce50")
    processes("worker")
    processes("sweeper")
    assert_nothing_lost(run.settle(run.submit(10), timeout=180), expect_valid=10)


def test_pebble_sleeping_during_validation(scenario, processes):
    run = scenario("validation sleeps", pebble="sleepy")
    processes("worker")
    assert_nothing_lost(run.settle(run.submit(10), timeout=180), expect_valid=10)


def test_powerdns_stopped_during_requests_then_started(scenario, processes, fault_pdns):
    run = scenario("PowerDNS stopped, then started")
    processes("worker")
    processes("sweeper")
    fault_pdns.stop()
    try:
        submitted = run.submit(5)
        time.sleep(3)
        assert not CertificateRequest.objects.filter(status="valid").exists()
    finally:
        fault_pdns.start()
        stack.wait_until(lambda: stack.powerdns_up(settings.PDNS_API_KEY), 20, "PowerDNS")
    assert_nothing_lost(run.settle(submitted, timeout=120), expect_valid=5)


def test_powerdns_refusing_the_txt_record(scenario, processes, acme_product):
    # A CNAME at the challenge name makes PowerDNS answer 422 to the TXT write: a
    # configuration error to show the operator, not something to retry.
    name = f"conflict0.{acme_product.zone}"  # what run.submit(1, prefix="conflict") names
    zone = settings.CSRPROXY_BASE_ZONE
    cname = powerdns.rrset(f"_acme-challenge.{name}", "CNAME", [f"elsewhere.{zone}."])
    powerdns.rrsets_patch(zone, [cname])
    run = scenario("PowerDNS answers 422")
    processes("worker")
    try:
        submitted = [(run.submit(1, prefix="conflict")[0][0], name)]
        counts = run.settle(submitted, timeout=60)
    finally:
        powerdns.rrsets_patch(zone, [powerdns.rrset(f"_acme-challenge.{name}", "CNAME", [])])
    assert_nothing_lost(counts, expect_valid=0)
    request = CertificateRequest.objects.get(pk=submitted[0][0])
    assert request.error["type"] == "urn:csrproxy:problem:dns-error"
    assert "422" in request.error["detail"]
    assert not request.events.filter(message__startswith="will retry").exists()


@pytest.mark.parametrize("step,moment", [
    ("publish", "after the order"), ("verify", "after the TXT publish"),
    ("validate", "after the challenge answer"), ("download", "after finalize"),
])
def test_worker_killed_between_steps_then_restarted(scenario, processes, step, moment):
    run = scenario(f"worker SIGKILLed {moment}")
    doomed = processes("worker", CSRPROXY_FAILPOINT_KILL_ENTERING_STEP=step)
    processes("sweeper")
    submitted = run.submit(1)
    # The step column, not the history: the killed run's history lines die with it.
    stack.wait_until(lambda: CertificateRequest.objects.filter(step=step).exists(), 60,
                     f"request reaching {step}")
    stack.wait_until(lambda: doomed.popen.poll() is not None or not _has_child(doomed), 30,
                     "the worker to die")
    doomed.kill()
    processes("worker")
    assert_nothing_lost(run.settle(submitted, timeout=90), expect_valid=1)


def _has_child(process: stack.Process) -> bool:
    result = subprocess.run(["pgrep", "-P", str(process.popen.pid)], capture_output=True)
    return result.returncode == 0


def test_rabbitmq_restarted_with_requests_in_flight(scenario, processes):
    run = scenario("RabbitMQ restarted", pebble="sleepy")
    processes("worker")
    processes("sweeper")
    submitted = run.submit(10)
    time.sleep(1)
    subprocess.run(["rabbitmqctl", "stop_app"], check=True, capture_output=True)
    subprocess.run(["rabbitmqctl", "start_app"], check=True, capture_output=True)
    assert_nothing_lost(run.settle(submitted, timeout=180), expect_valid=10)


def test_ca_answering_5xx_and_rate_limited(scenario, processes, pebbles):
    with stack.FaultProxy(upstream_port=pebbles["fast"][0], port=14150) as proxy:
        proxy.plan = {
            "/order-plz": [(500, "serverInternal", None), (503, "serverInternal", None),
                           (429, "rateLimited", 3)],
            "/finalize-order/": [(500, "serverInternal", None)],
        }
        run = scenario("CA 5xx and rateLimited", directory_port=proxy.port)
        processes("worker")
        processes("sweeper")
        counts = run.settle(run.submit(3), timeout=120)
        assert sorted(proxy.injected) == [("/finalize-order/", 500), ("/order-plz", 429),
                                          ("/order-plz", 500), ("/order-plz", 503)]
    assert_nothing_lost(counts, expect_valid=3)
    waits = [float(e.message.split()[3]) for e in
             RequestEvent.objects.filter(message__contains="rateLimited")]
    assert waits and min(waits) >= 3  # Retry-After honoured


def test_two_hundred_requests_queued_while_no_worker_runs(scenario, processes):
    run = scenario("200 requests, no worker, then workers")
    submitted = run.submit(200)
    time.sleep(2)
    assert CertificateRequest.objects.filter(status="pending").count() == 200
    processes("worker")
    processes("worker")
    processes("sweeper")
    assert_nothing_lost(run.settle(submitted, timeout=300), expect_valid=200)


def test_api_answers_503_while_the_database_is_unreachable(base_env, tmp_path):
    # The web service pointed at a port where no PostgreSQL listens: every answer must be a
    # clean 503 problem document (clients retry), never a 500.
    port = 18431
    env = base_env | {"DATABASE_URL": "postgres://csrproxy:csrproxy@127.0.0.1:5439/csrproxy"}
    web = stack.Process([str(stack.ROOT / ".venv" / "bin" / "gunicorn"), "csrproxy.wsgi",
                         "--bind", f"127.0.0.1:{port}", "--workers", "1"], env,
                        tmp_path / "gunicorn.log").start()
    try:
        stack.wait_until(lambda: _answers(port), 60, "gunicorn")
        answers = {
            "health": requests.get(f"http://127.0.0.1:{port}/healthz", timeout=10),
            "list": requests.get(f"http://127.0.0.1:{port}/api/v1/certificates/", timeout=10,
                                 headers={"Authorization": "Bearer csrp_0123456789ab_x"}),
            "submit": requests.post(f"http://127.0.0.1:{port}/api/v1/certificates/", timeout=10,
                                    json={"csr": "x"},
                                    headers={"Authorization": "Bearer csrp_0123456789ab_x"}),
        }
    finally:
        web.stop()
    assert {name: r.status_code for name, r in answers.items()} == {
        "health": 503, "list": 503, "submit": 503}
    assert answers["submit"].headers["Content-Type"] == "application/problem+json"
    assert answers["submit"].headers["Retry-After"]
    SUMMARY.append("database unreachable: 3 API calls, 3 answered 503, 0 answered 500")


def _answers(port: int) -> bool:
    try:
        requests.get(f"http://127.0.0.1:{port}/healthz", timeout=5)
        return True
    except requests.RequestException:
        return False


def test_a_request_past_its_deadline_ends_invalid_with_that_reason(scenario, processes,
                                                                    fault_pdns):
    # PowerDNS stays down past the request's deadline: the request must end, not wait forever.
    run = scenario("deadline passed while PowerDNS is down")
    processes("worker")
    processes("sweeper")
    fault_pdns.stop()
    try:
        submitted = run.submit(1)
        CertificateRequest.objects.filter(pk=submitted[0][0]).update(
            deadline_at=timezone.now() + timedelta(seconds=3))
        stack.wait_until(lambda: CertificateRequest.objects.filter(
            pk=submitted[0][0], status="invalid").exists(), 60, "the deadline to end it")
    finally:
        fault_pdns.start()
        stack.wait_until(lambda: stack.powerdns_up(settings.PDNS_API_KEY), 20, "PowerDNS")
    assert_nothing_lost(run.settle(submitted, timeout=60), expect_valid=0)
    error = CertificateRequest.objects.get(pk=submitted[0][0]).error
    assert error["type"] == "urn:csrproxy:problem:deadline-exceeded"
