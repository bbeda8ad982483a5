"""Handing an issued certificate back for a resubmitted CSR: only within its own product."""
from __future__ import annotations

import pytest

from signing.certificates import chain_check
from signing.csr import csr_parse
from signing.models import Certificate, CertificateRequest
from signing.services import _reusable_request, request_submit
from tests.csrs import ec_key, make_csr, self_signed_certificate

pytestmark = pytest.mark.django_db


def _issued(product, key, names: list[str]) -> CertificateRequest:
    req, _ = request_submit(product=product, csr_data=make_csr(names, key))
    chain = self_signed_certificate(key, names)
    Certificate.objects.create(request=req, chain_pem=chain, **chain_check(
        chain, public_key_sha256=req.public_key_sha256, names=req.names))
    CertificateRequest.objects.filter(pk=req.pk).update(
        status=CertificateRequest.Status.VALID, step=CertificateRequest.Step.DONE)
    return req


def _parsed(product, key, names: list[str]):
    return csr_parse(make_csr(names, key), zone=product.zone, allow_wildcard=True, max_names=10)


def test_the_same_key_and_names_get_the_issued_request_back(acme_product):
    key, names = ec_key(), [f"again.{acme_product.zone}"]
    issued = _issued(acme_product, key, names)
    assert _reusable_request(acme_product, _parsed(acme_product, key, names)).pk == issued.pk


def test_another_products_certificate_is_never_handed_back(acme_product, globex_product):
    key, names = ec_key(), [f"shared.{acme_product.zone}"]
    _issued(acme_product, key, names)
    # The policy would refuse these names for globex; the lookup must not rely on that.
    assert _reusable_request(globex_product, _parsed(acme_product, key, names)) is None


def test_other_names_for_the_same_key_are_not_reused(acme_product):
    key = ec_key()
    _issued(acme_product, key, [f"one.{acme_product.zone}"])
    other = [f"one.{acme_product.zone}", f"two.{acme_product.zone}"]
    assert _reusable_request(acme_product, _parsed(acme_product, key, other)) is None
