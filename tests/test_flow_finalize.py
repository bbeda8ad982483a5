"""The finalize step: finalize once, even when a crash made it run twice (ACME adapter patched)."""
from __future__ import annotations

import pytest

from signing import acme_ca
from signing.flow import Failed, step_finalize
from signing.models import CertificateRequest
from signing.services import request_submit
from tests.csrs import make_csr

pytestmark = pytest.mark.django_db

ORDER_URL = "https://ca.example/order/1"


@pytest.fixture
def req(acme_product, unreachable_ca) -> CertificateRequest:
    req, _ = request_submit(product=acme_product, csr_data=make_csr([f"f.{acme_product.zone}"]))
    req.acme_account = unreachable_ca
    req.order_url, req.finalize_url = ORDER_URL, ORDER_URL + "/finalize"
    req.authorizations = [{"url": "https://ca.example/authz/1", "status": "valid"}]
    req.step = CertificateRequest.Step.FINALIZE
    return req


def _order(status: str, certificate_url: str = "") -> acme_ca.Order:
    return acme_ca.Order(url=ORDER_URL, status=status, finalize_url=ORDER_URL + "/finalize",
                         certificate_url=certificate_url)


def _not_ready(*args, **kwargs):
    raise acme_ca.CaError({"type": "urn:ietf:params:acme:error:orderNotReady",
                           "detail": "Order's status (\"valid\") is not acceptable"}, status=403)


def test_finalize_posts_the_csr_to_the_stored_finalize_url(req, monkeypatch):
    sent = []
    monkeypatch.setattr(acme_ca, "order_finalize",
                        lambda account, order_url, finalize_url, csr:
                        sent.append((order_url, finalize_url, csr)) or _order("processing"))
    monkeypatch.setattr(acme_ca, "order_fetch", lambda *a: pytest.fail("no look needed"))
    assert step_finalize(req) == CertificateRequest.Step.DOWNLOAD
    assert sent == [(ORDER_URL, ORDER_URL + "/finalize", req.csr_pem.encode())]
    assert req.certificate_url == ""  # still processing: download looks at the order


def test_a_ca_that_issues_at_once_hands_download_the_certificate_url(req, monkeypatch):
    monkeypatch.setattr(acme_ca, "order_finalize",
                        lambda *a: _order("valid", "https://ca.example/cert/1"))
    assert step_finalize(req) == CertificateRequest.Step.DOWNLOAD
    assert req.certificate_url == "https://ca.example/cert/1"


def test_finalized_before_a_crash_goes_on_to_download_without_finalizing_again(
        req, monkeypatch):
    monkeypatch.setattr(acme_ca, "order_finalize", _not_ready)
    monkeypatch.setattr(acme_ca, "order_fetch",
                        lambda *a: _order("valid", "https://ca.example/cert/1"))
    assert step_finalize(req) == CertificateRequest.Step.DOWNLOAD
    assert req.certificate_url == "https://ca.example/cert/1"


def test_not_ready_while_the_order_says_ready_is_retried_not_failed(req, monkeypatch):
    monkeypatch.setattr(acme_ca, "order_finalize", _not_ready)
    monkeypatch.setattr(acme_ca, "order_fetch", lambda *a: _order("ready"))
    with pytest.raises(acme_ca.CaError) as raised:
        step_finalize(req)
    assert raised.value.transient


def test_an_invalid_order_fails_the_request(req, monkeypatch):
    monkeypatch.setattr(acme_ca, "order_finalize", _not_ready)
    monkeypatch.setattr(acme_ca, "order_fetch", lambda *a: _order("invalid"))
    with pytest.raises(Failed):
        step_finalize(req)
