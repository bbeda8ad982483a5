"""Publisher staff see and change only their own tenant, through the real admin pages."""
from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from tenants.models import ApiToken, Product
from tenants.services import token_create

pytestmark = pytest.mark.django_db


def login(user) -> Client:
    client = Client()
    assert client.login(username=user.username, password="pw-" + user.username)
    return client


@pytest.fixture
def globex_token(globex_product):
    token, _ = token_create(tenant=globex_product.tenant, product=globex_product, name="bobs")
    return token


class TestProductIsolation:
    def test_alice_lists_only_her_products(self, alice, acme_product, globex_product):
        page = login(alice).get(reverse("admin:tenants_product_changelist"))
        assert page.status_code == 200
        assert acme_product.zone in page.content.decode()
        assert globex_product.zone not in page.content.decode()

    def test_alice_cannot_open_bobs_product(self, alice, globex_product):
        url = reverse("admin:tenants_product_change", args=[globex_product.pk])
        response = login(alice).get(url)
        # Django's admin redirects to the index with "doesn't exist" for objects outside the
        # queryset: the page itself is never shown.
        assert response.status_code in (302, 404)
        assert globex_product.zone not in response.content.decode()

    def test_alice_cannot_change_bobs_product(self, alice, globex_product):
        url = reverse("admin:tenants_product_change", args=[globex_product.pk])
        login(alice).post(url, {"slug": "stolen", "name": "stolen", "max_names": 10,
                                "tenant": globex_product.tenant_id, "quota_window_days": 7})
        globex_product.refresh_from_db()
        assert globex_product.slug == "portal"

    def test_alice_cannot_delete_bobs_product(self, alice, globex_product):
        url = reverse("admin:tenants_product_delete", args=[globex_product.pk])
        login(alice).post(url, {"post": "yes"})
        assert Product.objects.filter(pk=globex_product.pk).exists()

    def test_alice_cannot_move_a_product_to_bobs_tenant(self, alice, acme_product, globex_tenant):
        url = reverse("admin:tenants_product_change", args=[acme_product.pk])
        response = login(alice).post(url, {
            "tenant": globex_tenant.pk, "slug": "app", "name": "x", "max_names": 10,
            "quota_window_days": 7, "allow_wildcard": "on",
            "address_ipv4": "127.0.0.1", "address_ipv6": "::1"})
        assert response.status_code == 200  # the form comes back with an error
        acme_product.refresh_from_db()
        assert acme_product.tenant.slug == "acme"

    def test_alice_cannot_set_her_own_zone(self, alice, acme_product):
        page = login(alice).get(reverse("admin:tenants_product_change", args=[acme_product.pk]))
        assert 'name="zone"' not in page.content.decode()

    def test_charlie_without_tenant_sees_nothing(self, charlie, acme_product):
        client = login(charlie)
        assert client.get(reverse("admin:tenants_product_changelist")).status_code == 403

    def test_superuser_sees_all(self, django_user_model, acme_product, globex_product):
        admin_user = django_user_model.objects.create_superuser("root", password="pw-root")
        page = login(admin_user).get(reverse("admin:tenants_product_changelist")).content.decode()
        assert acme_product.zone in page and globex_product.zone in page


class TestTokenIsolation:
    def test_alice_lists_only_her_tokens(self, alice, acme_product, globex_token):
        token_create(tenant=acme_product.tenant, product=acme_product, name="alices")
        page = login(alice).get(reverse("admin:tenants_apitoken_changelist")).content.decode()
        assert "alices" in page
        assert "bobs" not in page

    def test_alice_cannot_open_or_revoke_bobs_token(self, alice, globex_token):
        client = login(alice)
        response = client.get(reverse("admin:tenants_apitoken_change", args=[globex_token.pk]))
        assert response.status_code in (302, 404)
        client.post(reverse("admin:tenants_apitoken_changelist"),
                    {"action": "revoke", "_selected_action": [globex_token.pk]})
        globex_token.refresh_from_db()
        assert globex_token.revoked_at is None

    def test_alice_cannot_create_a_token_for_bobs_product(self, alice, globex_product):
        response = login(alice).post(reverse("admin:tenants_apitoken_add"),
                                     {"product": globex_product.pk, "name": "sneaky"})
        assert response.status_code == 200
        assert "csrp_" not in response.content.decode()
        assert not ApiToken.objects.filter(name="sneaky").exists()

    def test_token_created_in_the_admin_is_shown_exactly_once(self, alice, acme_product):
        client = login(alice)
        response = client.post(reverse("admin:tenants_apitoken_add"),
                               {"product": acme_product.pk, "name": "fresh"})
        body = response.content.decode()
        assert response.status_code == 200 and "no-store" in response["Cache-Control"]
        token = body.split('id="token-plaintext"')[1].split(">")[1].split("<")[0]
        assert token.startswith("csrp_")
        row = ApiToken.objects.get(name="fresh")
        assert row.created_by == alice
        for url in (reverse("admin:tenants_apitoken_change", args=[row.pk]),
                    reverse("admin:tenants_apitoken_changelist")):
            assert token not in client.get(url).content.decode()
