"""API hardening: tenant isolation, ignored fields, body limits, idempotency, admin guard."""
from __future__ import annotations

import pytest
from django.core.cache import cache
from django.test import Client
from rest_framework.test import APIClient

from signing.models import CertificateRequest
from signing.services import request_submit
from tenants.services import token_create
from tests.conftest import provisioned_product
from tests.csrs import ec_key, make_csr

pytestmark = pytest.mark.django_db


def bearer(token: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return client


@pytest.fixture
def world(acme_tenant, globex_tenant, run_id):
    """Two tenants with two products each, a token and a request per product, and a tenant
    (reporting) token per tenant."""
    products, tokens, requests = {}, {}, {}
    with provisioned_product(acme_tenant, "a1", run_id) as a1, \
            provisioned_product(acme_tenant, "a2", run_id) as a2, \
            provisioned_product(globex_tenant, "g1", run_id) as g1, \
            provisioned_product(globex_tenant, "g2", run_id) as g2:
        for product in (a1, a2, g1, g2):
            key = product.slug
            products[key] = product
            tokens[key] = token_create(tenant=product.tenant, product=product)[1]
            requests[key], _ = request_submit(product=product,
                                              csr_data=make_csr([f"h.{product.zone}"]))
        for tenant in (acme_tenant, globex_tenant):
            tokens[tenant.slug] = token_create(tenant=tenant, product=None)[1]
        yield products, tokens, requests


class TestTenantIsolation:
    def test_a_product_token_lists_only_its_product(self, world):
        _, tokens, requests = world
        for key in ("a1", "a2", "g1", "g2"):
            listed = bearer(tokens[key]).get("/api/v1/certificates/").json()["results"]
            assert [r["id"] for r in listed] == [requests[key].pk]

    def test_no_token_reads_another_products_request_or_chain(self, world):
        _, tokens, requests = world
        for key in ("a1", "a2", "g1", "g2"):
            client = bearer(tokens[key])
            for other, request in requests.items():
                if other == key:
                    continue
                for url in (f"/api/v1/certificates/{request.pk}/",
                            f"/api/v1/certificates/{request.pk}/chain"):
                    response = client.get(url)
                    assert response.status_code == 404, (key, url)
                    assert response["Content-Type"] == "application/problem+json"

    def test_a_tenant_token_reads_its_tenant_only_and_cannot_submit(self, world):
        _, tokens, requests = world
        client = bearer(tokens["acme"])
        listed = {r["id"] for r in client.get("/api/v1/certificates/").json()["results"]}
        assert listed == {requests["a1"].pk, requests["a2"].pk}
        assert client.get(f"/api/v1/certificates/{requests['g1'].pk}/").status_code == 404
        response = client.post("/api/v1/certificates/", {"csr": "x"}, format="json")
        assert response.status_code == 403

    def test_unknown_ids_and_foreign_ids_look_the_same(self, world):
        _, tokens, requests = world
        client = bearer(tokens["a1"])
        foreign = client.get(f"/api/v1/certificates/{requests['g1'].pk}/")
        missing = client.get("/api/v1/certificates/999999/")
        assert foreign.status_code == missing.status_code == 404
        assert foreign.content == missing.content


class TestBodies:
    def test_client_set_fields_change_nothing(self, api, acme_product, globex_product):
        name = f"host.{acme_product.zone}"
        response = api.post("/api/v1/certificates/", {
            "csr": make_csr([name]).decode(), "status": "valid", "names": ["evil.example"],
            "certificate": "forged", "tenant": globex_product.tenant_id,
            "product": globex_product.pk, "id": 424242, "error": None,
        }, format="json")
        assert response.status_code == 202
        body = response.json()
        assert body["status"] == "pending" and body["names"] == [name]
        assert body["certificate"] is None and body["id"] != 424242
        request = CertificateRequest.objects.get()
        assert request.product == acme_product and request.status == "pending"

    def test_raw_pkcs10_body_is_accepted(self, api, acme_product):
        response = api.generic("POST", "/api/v1/certificates/",
                               make_csr([f"raw.{acme_product.zone}"]),
                               content_type="application/pkcs10")
        assert response.status_code == 202, response.content
        assert response["Location"] == f"/api/v1/certificates/{response.json()['id']}/"

    def test_an_oversized_body_gets_413_before_parsing(self, api):
        response = api.generic("POST", "/api/v1/certificates/", b"{" + b" " * 100_000 + b"}",
                               content_type="application/json")
        assert response.status_code == 413
        assert response.json()["type"] == "urn:csrproxy:problem:body-too-large"

    def test_an_unsupported_media_type_gets_415(self, api):
        response = api.generic("POST", "/api/v1/certificates/", b"csr=x",
                               content_type="application/x-www-form-urlencoded")
        assert response.status_code == 415
        assert response["Content-Type"] == "application/problem+json"


class TestIdempotency:
    def test_a_retried_submission_returns_the_first_request(self, api, acme_product):
        csr = make_csr([f"retry.{acme_product.zone}"]).decode()
        first = api.post("/api/v1/certificates/", {"csr": csr}, format="json",
                         HTTP_IDEMPOTENCY_KEY="k-1")
        second = api.post("/api/v1/certificates/", {"csr": csr}, format="json",
                          HTTP_IDEMPOTENCY_KEY="k-1")
        assert (first.status_code, second.status_code) == (202, 200)
        assert first.json()["id"] == second.json()["id"]
        assert CertificateRequest.objects.count() == 1

    def test_the_same_key_with_another_csr_is_refused(self, api, acme_product):
        for key, expected in ((ec_key(), 202), (ec_key(), 422)):
            response = api.post("/api/v1/certificates/",
                                {"csr": make_csr([f"k.{acme_product.zone}"], key).decode()},
                                format="json", HTTP_IDEMPOTENCY_KEY="k-2")
            assert response.status_code == expected
        assert CertificateRequest.objects.count() == 1

    def test_without_a_key_each_submission_is_a_new_request(self, api, acme_product):
        csr = make_csr([f"twice.{acme_product.zone}"]).decode()
        ids = {api.post("/api/v1/certificates/", {"csr": csr}, format="json").json()["id"]
               for _ in range(2)}
        assert len(ids) == 2


class TestAdminLoginGuard:
    @pytest.fixture(autouse=True)
    def fresh_cache(self):
        cache.clear()

    def test_password_guessing_is_stopped(self, alice):
        client = Client()
        for _ in range(5):
            response = client.post("/admin/login/", {"username": "alice", "password": "guess"})
            assert response.status_code == 200
        response = client.post("/admin/login/", {"username": "alice", "password": "pw-alice"})
        assert response.status_code == 429
        assert int(response["Retry-After"]) > 0

    def test_a_success_clears_the_users_failures(self, alice):
        client = Client()
        for _ in range(4):
            client.post("/admin/login/", {"username": "alice", "password": "guess"})
        ok = client.post("/admin/login/", {"username": "alice", "password": "pw-alice"})
        assert ok.status_code == 302


class TestApiDocs:
    def test_schema_and_docs_are_served_without_any_cdn(self, client):
        assert client.get("/api/schema/").status_code == 200
        docs = client.get("/api/docs/")
        assert docs.status_code == 200
        assert "cdn." not in docs.content.decode() and "unpkg" not in docs.content.decode()
