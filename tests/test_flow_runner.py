"""The runner's lease and deadline around a crash or a slow CA (ACME adapter patched)."""
from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from signing import acme_ca
from signing.certificates import chain_check
from signing.flow import request_advance
from signing.models import Certificate, CertificateRequest, RequestEvent
from signing.services import request_submit
from tests.csrs import ec_key, make_csr, self_signed_certificate

pytestmark = pytest.mark.django_db
Step, Status = CertificateRequest.Step, CertificateRequest.Status
CA = "https://ca.example"


def test_a_run_whose_lease_ran_out_during_a_ca_call_writes_nothing(acme_product, unreachable_ca,
                                                                   monkeypatch):
    name = f"slow.{acme_product.zone}"
    req, _ = request_submit(product=acme_product, csr_data=make_csr([name]))
    other_workers_lease = timezone.now() + timedelta(minutes=5)

    def order_create_outlasting_the_lease(*args):
        # Meanwhile the lease ran out and another worker claimed the request.
        CertificateRequest.objects.filter(pk=req.pk).update(lease_until=other_workers_lease)
        authz = acme_ca.Authorization(
            url=f"{CA}/authz/1", status="pending", identifier=name,
            challenge_url=f"{CA}/chall/1", txt_name=f"_acme-challenge.{name}", txt_value="v")
        return acme_ca.Order(url=f"{CA}/order/1", status="pending",
                             finalize_url=f"{CA}/order/1/finalize", authorizations=[authz])

    monkeypatch.setattr(acme_ca, "order_create", order_create_outlasting_the_lease)
    assert request_advance(req.pk) is None
    req.refresh_from_db()
    assert (req.step, req.status, req.order_url) == (Step.ORDER, Status.PENDING, "")
    assert req.lease_until == other_workers_lease
    assert not RequestEvent.objects.filter(request=req).exists()


def test_a_run_gives_its_lease_back_and_records_its_steps(acme_product, unreachable_ca,
                                                          monkeypatch):
    req, _ = request_submit(product=acme_product, csr_data=make_csr([f"r.{acme_product.zone}"]))
    monkeypatch.setattr(acme_ca, "order_create",
                        lambda *a: acme_ca.Order(url=f"{CA}/order/2", status="invalid",
                                                 finalize_url=f"{CA}/order/2/finalize"))
    with CaptureQueriesContext(connection) as queries:
        assert request_advance(req.pk) is None
    req.refresh_from_db()
    assert (req.step, req.status, req.lease_until) == (Step.DONE, Status.INVALID, None)
    updates = [q["sql"] for q in queries if q["sql"].startswith('UPDATE "signing_certificate')]
    # Each save writes what changed since the last: the problem once, not at every save.
    assert len(updates) >= 2 and len([sql for sql in updates if '"error"' in sql]) == 1
    assert req.updated_at > req.created_at
    assert list(RequestEvent.objects.filter(request=req).order_by("at", "pk")
                .values_list("message", flat=True)) == [
        "picked up by a worker", "failed: The CA refused the order.", "step done"]


def test_a_certificate_stored_before_a_crash_is_delivered_after_the_deadline(
        acme_product, unreachable_ca, monkeypatch):
    key, name = ec_key(), f"late.{acme_product.zone}"
    req, _ = request_submit(product=acme_product, csr_data=make_csr([name], key))
    chain = self_signed_certificate(key, [name])
    # The worker stored the certificate, then died before the request said valid.
    Certificate.objects.create(request=req, chain_pem=chain, **chain_check(
        chain, public_key_sha256=req.public_key_sha256, names=req.names))
    CertificateRequest.objects.filter(pk=req.pk).update(
        step=Step.DOWNLOAD, status=Status.PROCESSING, acme_account=unreachable_ca,
        order_url=f"{CA}/order/3", certificate_url=f"{CA}/cert/3",
        deadline_at=timezone.now() - timedelta(seconds=1))
    monkeypatch.setattr(acme_ca, "certificate_download", lambda *a: pytest.fail("stored"))
    assert request_advance(req.pk) is None
    req.refresh_from_db()
    assert (req.step, req.status, req.error) == (Step.DONE, Status.VALID, None)


def test_past_the_deadline_without_a_certificate_the_request_fails(acme_product, unreachable_ca,
                                                                     monkeypatch):
    req, _ = request_submit(product=acme_product, csr_data=make_csr([f"d.{acme_product.zone}"]))
    CertificateRequest.objects.filter(pk=req.pk).update(
        step=Step.DOWNLOAD, status=Status.PROCESSING, acme_account=unreachable_ca,
        order_url=f"{CA}/order/4", deadline_at=timezone.now() - timedelta(seconds=1))
    monkeypatch.setattr(acme_ca, "order_fetch", lambda *a: pytest.fail("past the deadline"))
    assert request_advance(req.pk) is None
    req.refresh_from_db()
    assert (req.step, req.status) == (Step.DONE, Status.INVALID)
    assert req.error["type"] == "urn:csrproxy:problem:deadline-exceeded"
