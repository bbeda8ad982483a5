"""Shared fixtures. Tenants follow one cast: alice (publisher "acme") and bob (publisher
"globex"); charlie has no tenant and must see nothing of theirs."""
from __future__ import annotations

import secrets
from contextlib import contextmanager

import pytest
from django.contrib.auth.models import User
from rest_framework.test import APIClient

from csrproxy import secretbox
from dns_provisioning.services import product_dns_remove, product_dns_sync
from signing import acme_ca
from signing.models import AcmeAccount
from tenants.models import Membership
from tenants.services import product_create, tenant_create, token_create


@pytest.fixture
def run_id() -> str:
    """A random label: names in the shared PowerDNS never collide between runs."""
    return "t" + secrets.token_hex(3)


@pytest.fixture
def acme_tenant(db):
    return tenant_create(slug="acme", name="Acme Software")


@pytest.fixture
def globex_tenant(db):
    return tenant_create(slug="globex", name="Globex")


@contextmanager
def provisioned_product(tenant, slug, run_id, zone="", **kwargs):
    """A product with its DNS in the real PowerDNS, removed again afterwards."""
    zone = zone or f"{slug}.{run_id}.{tenant.slug}.csrproxy.test"
    product = product_create(tenant=tenant, slug=slug, zone=zone, **kwargs)
    product_dns_sync(product)
    try:
        yield product
    finally:
        product_dns_remove(product.zone)


@pytest.fixture
def acme_product(acme_tenant, run_id):
    with provisioned_product(acme_tenant, "app", run_id, allow_wildcard=True) as product:
        yield product


@pytest.fixture
def globex_product(globex_tenant, run_id):
    with provisioned_product(globex_tenant, "portal", run_id) as product:
        yield product


@pytest.fixture
def acme_token(acme_product):
    return token_create(tenant=acme_product.tenant, product=acme_product, name="test")[1]


@pytest.fixture
def api(acme_token):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {acme_token}")
    return client


def _staff(username: str, tenant=None) -> User:
    user = User.objects.create_user(username, password="pw-" + username, is_staff=True)
    if tenant is not None:
        Membership.objects.create(user=user, tenant=tenant)
    return user


@pytest.fixture
def alice(acme_tenant):
    return _staff("alice", acme_tenant)


@pytest.fixture
def bob(globex_tenant):
    return _staff("bob", globex_tenant)


@pytest.fixture
def charlie(db):
    return _staff("charlie")


@pytest.fixture
def unreachable_ca(db) -> AcmeAccount:
    """The default ACME account, at a CA that is never called: for tests that patch the ACME
    adapter."""
    return AcmeAccount.objects.create(
        name="ca", directory_url="https://ca.example/dir", account_url="https://ca.example/acct/1",
        is_default=True, key_encrypted=secretbox.encrypt(acme_ca.account_key_generate()))
