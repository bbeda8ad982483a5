"""The operator commands of the contract, and the DNS they provision (real PowerDNS)."""
from __future__ import annotations

from io import StringIO

import pytest
from django.conf import settings
from django.core.management import CommandError, call_command

from dns_provisioning import powerdns
from dns_provisioning.services import product_dns_remove
from tenants.models import ApiToken, Product, Tenant
from tenants.tokens import token_matches

pytestmark = pytest.mark.django_db


def run(*args) -> str:
    out = StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def ask(name: str, rtype: str) -> list[str]:
    return powerdns.query(settings.PDNS_DNS_SERVERS[0], name, rtype)


@pytest.fixture
def tenant_slug(run_id):
    slug = f"pub-{run_id}"
    run("create_tenant", slug, "--name", "A Publisher")
    return slug


class TestCreateTenant:
    def test_it_creates_a_tenant(self, tenant_slug):
        assert Tenant.objects.get(slug=tenant_slug).name == "A Publisher"

    def test_it_refuses_a_duplicate(self, tenant_slug):
        with pytest.raises(CommandError, match="already exists"):
            run("create_tenant", tenant_slug, "--name", "Again")


class TestCreateProduct:
    def test_it_prints_the_default_zone_and_every_name_resolves_to_the_installation(
        self, tenant_slug, run_id
    ):
        zone = run("create_product", tenant_slug, "shop").strip()
        try:
            assert zone == f"shop.{tenant_slug}.{settings.CSRPROXY_BASE_ZONE}"
            assert ask(f"anything.{zone}", "A") == ["127.0.0.1"]
            assert ask(f"anything.{zone}", "AAAA") == ["::1"]
            assert ask(zone, "A") == ["127.0.0.1"]
        finally:
            product_dns_remove(zone)
        assert ask(f"anything.{zone}", "A") == []

    def test_custom_zone_gets_a_powerdns_zone_of_its_own(self, tenant_slug, run_id):
        zone = f"{run_id}.example.net"
        out = run("create_product", tenant_slug, "custom", "--zone", zone + ".",
                  "--allow-wildcard")
        try:
            assert out.strip() == zone
            assert powerdns.zone_exists(zone)
            assert ask(f"host.{zone}", "A") == ["127.0.0.1"]
            assert Product.objects.get(zone=zone).allow_wildcard
        finally:
            product_dns_remove(zone)
        assert not powerdns.zone_exists(zone)

    def test_legacy_subject_marks_the_legacy_product(self, tenant_slug):
        zone = run("create_product", tenant_slug, "legacy", "--legacy-subject",
                   f"CN=go.legacy.{tenant_slug}.csrproxy.test").strip()
        try:
            assert Product.objects.get(zone=zone).legacy_subject.startswith("CN=go.")
        finally:
            product_dns_remove(zone)

    def test_it_refuses_an_unknown_tenant(self):
        with pytest.raises(CommandError, match="No tenant"):
            run("create_product", "nobody", "shop")


class TestCreateToken:
    def test_it_prints_only_the_token(self, tenant_slug):
        zone = run("create_product", tenant_slug, "shop").strip()
        try:
            out = run("create_token", tenant_slug, "shop", "--name", "ci")
        finally:
            product_dns_remove(zone)
        assert out.endswith("\n") and out.count("\n") == 1
        token = out.strip()
        row = ApiToken.objects.get()
        assert row.name == "ci" and row.product.slug == "shop"
        assert token_matches(token, row.digest)

    def test_it_refuses_an_unknown_product(self, tenant_slug):
        with pytest.raises(CommandError, match="No product"):
            run("create_token", tenant_slug, "nothing")
