"""Quotas under real concurrency (gunicorn, PostgreSQL) and certificate reuse."""
from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from signing.models import CertificateRequest
from tests.csrs import ec_key, make_csr
from tests.e2e.helpers import Client, verify_chain

pytestmark = pytest.mark.e2e


def test_hundred_concurrent_submissions_against_a_quota_of_ten_accept_exactly_ten(
    gunicorn_url, worker, transactional_db, acme_product, acme_token
):
    acme_product.quota_certificates = 10
    acme_product.save()
    csrs = [make_csr([f"q{i}.{acme_product.zone}"]) for i in range(100)]
    start = threading.Barrier(100)

    def submit(csr: bytes) -> requests.Response:
        start.wait()  # all at once
        return requests.post(f"{gunicorn_url}/api/v1/certificates/", data=csr, timeout=60,
                             headers={"Authorization": f"Bearer {acme_token}",
                                      "Content-Type": "application/pkcs10"})

    with ThreadPoolExecutor(max_workers=100) as pool:
        responses = list(pool.map(submit, csrs))
    statuses = sorted(r.status_code for r in responses)
    assert statuses.count(202) == 10 and statuses.count(429) == 90, statuses
    refused = next(r for r in responses if r.status_code == 429)
    assert refused.json()["type"] == "urn:csrproxy:problem:quota-certificates"
    assert 0 < int(refused.headers["Retry-After"]) <= 7 * 86400
    assert CertificateRequest.objects.filter(product=acme_product).count() == 10
    client = Client(gunicorn_url, acme_token)
    for r in responses:
        if r.status_code == 202:
            assert client.wait(r.json()["id"], timeout=120)["status"] == "valid"


def test_resubmitting_an_issued_csr_returns_the_same_certificate_without_an_order(
    stack, acme_product, acme_token, pebble
):
    client = Client(stack, acme_token)
    name, key = f"again.{acme_product.zone}", ec_key()
    csr = make_csr([name], key)
    first = client.issue(csr)
    assert first["status"] == "valid"
    order_url = CertificateRequest.objects.get(pk=first["id"]).order_url
    again = client.submit(csr)
    assert again.status_code == 200
    assert again.json()["id"] == first["id"]
    assert again.json()["certificate"] == first["certificate"]
    assert CertificateRequest.objects.count() == 1
    assert CertificateRequest.objects.get().order_url == order_url
    verify_chain(again.json()["certificate"], pebble.root_pem, [name], key)
