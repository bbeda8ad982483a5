"""API tokens: stored only as digests, one identical 401 for every bad token."""
from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.test import override_settings
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from rest_framework.test import APIClient

from tenants import token_cache
from tenants.models import ApiToken
from tenants.services import token_create, token_delete, token_revoke
from tests.database import database_text, token_secret_part

pytestmark = pytest.mark.django_db


def _get(token: str | None):
    client = APIClient()
    if token is not None:
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return client.get("/api/v1/certificates/")


class TestTokenStorage:
    def test_plaintext_appears_nowhere_in_the_database(self, acme_token):
        secret_part = token_secret_part(acme_token)
        text = database_text()
        assert ApiToken.objects.count() == 1
        assert acme_token not in text
        assert secret_part not in text

    def test_it_authenticates_a_good_token_and_records_last_use(self, acme_token):
        assert _get(acme_token).status_code == 200
        assert ApiToken.objects.get().last_used_at is not None

    def test_token_has_a_scannable_prefix(self, acme_token):
        assert acme_token.startswith("csrp_")


class TestBadTokens:
    def test_unknown_wrong_revoked_and_expired_get_identical_401s(self, acme_product):
        tenant = acme_product.tenant
        _, revoked = token_create(tenant=tenant, product=acme_product)
        token_revoke(token=ApiToken.objects.get(key_id=revoked.split("_")[1]))
        expired_row, expired = token_create(tenant=tenant, product=acme_product,
                                            expires_at=timezone.now() - timedelta(seconds=1))
        _, good = token_create(tenant=tenant, product=acme_product)
        key_id = good.split("_")[1]
        wrong_secret = f"csrp_{key_id}_{'A' * 43}"
        unknown = f"csrp_{'0' * 12}_{'B' * 43}"

        responses = [_get(t) for t in (unknown, wrong_secret, revoked, expired)]
        assert {r.status_code for r in responses} == {401}
        bodies = {r.content for r in responses}
        assert len(bodies) == 1, bodies
        assert {r["Content-Type"] for r in responses} == {"application/problem+json"}
        assert {r["WWW-Authenticate"] for r in responses} == {"Bearer"}
        assert expired_row.pk  # the expired token exists: only its expiry refuses it

    def test_missing_and_garbage_headers_get_the_same_401(self, acme_token):
        reference = _get("csrp_000000000000_x").content
        for header in (None, "", "not-a-token", "csrp_", "ä"):
            client = APIClient()
            if header is not None:
                client.credentials(HTTP_AUTHORIZATION=f"Bearer {header}")
            response = client.get("/api/v1/certificates/")
            assert response.status_code == 401
            assert response.content == reference


class TestTokenCache:
    """Each web process keeps a token's row for TOKEN_CACHE_SECONDS (0 in the other tests)."""

    @pytest.fixture(autouse=True)
    def _empty_cache(self):
        token_cache._recent_tokens.clear()
        yield
        token_cache._recent_tokens.clear()

    def _clock(self, monkeypatch, start: float = 1000.0) -> list[float]:
        now = [start]
        monkeypatch.setattr(token_cache.time, "monotonic", lambda: now[0])
        return now

    @override_settings(TOKEN_CACHE_SECONDS=5)
    def test_a_cached_token_needs_no_query(self, acme_token):
        assert _get(acme_token).status_code == 200
        with CaptureQueriesContext(connection) as queries:
            assert _get(acme_token).status_code == 200
        assert not [q for q in queries if "tenants_apitoken" in q["sql"]]

    @override_settings(TOKEN_CACHE_SECONDS=5)
    def test_a_wrong_secret_is_refused_even_when_the_key_id_is_cached(self, acme_token):
        assert _get(acme_token).status_code == 200
        key_id = acme_token.split("_")[1]
        assert _get(f"csrp_{key_id}_{'A' * 43}").status_code == 401

    @override_settings(TOKEN_CACHE_SECONDS=5)
    def test_a_revocation_elsewhere_takes_effect_once_the_cached_row_is_older_than_the_delay(
            self, acme_token, monkeypatch):
        now = self._clock(monkeypatch)
        assert _get(acme_token).status_code == 200
        # Revoked by another process: this one's cache does not hear of it.
        ApiToken.objects.update(revoked_at=timezone.now())
        now[0] += 4.9
        assert _get(acme_token).status_code == 200  # the documented delay
        now[0] += 0.2
        assert _get(acme_token).status_code == 401

    @override_settings(TOKEN_CACHE_SECONDS=5)
    def test_a_revocation_or_deletion_in_this_process_takes_effect_at_once(
            self, acme_product, django_capture_on_commit_callbacks):
        for end in (token_revoke, token_delete):
            row, token = token_create(tenant=acme_product.tenant, product=acme_product)
            assert _get(token).status_code == 200
            with django_capture_on_commit_callbacks(execute=True):
                end(token=row, actor=None)
            assert _get(token).status_code == 401

    @override_settings(TOKEN_CACHE_SECONDS=5)
    def test_expiry_is_checked_on_every_request(self, acme_product):
        row, token = token_create(tenant=acme_product.tenant, product=acme_product,
                                  expires_at=timezone.now() + timedelta(seconds=60))
        assert _get(token).status_code == 200
        ApiToken.objects.filter(pk=row.pk).update(expires_at=timezone.now())  # not seen yet
        token_cache._recent_tokens[row.key_id][1].expires_at = timezone.now()
        assert _get(token).status_code == 401

    @override_settings(TOKEN_CACHE_SECONDS=5)
    def test_unknown_key_ids_are_not_cached(self):
        assert _get(f"csrp_{'0' * 12}_{'B' * 43}").status_code == 401
        assert token_cache._recent_tokens == {}
