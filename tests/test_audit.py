"""The configuration audit trail: token and product changes made in the admin and by the
operator commands are recorded with their actor, never with a token's plaintext, and
publisher staff see only their own tenant's trail (and requests' events)."""
from __future__ import annotations

import json
from io import StringIO

import pytest
from django.core.management import call_command
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from dns_provisioning.services import product_dns_remove
from signing.models import CertificateRequest, RequestEvent
from tenants.models import ApiToken, AuditEvent, Product, Tenant
from tenants.services import product_create, token_create

pytestmark = pytest.mark.django_db
Action = AuditEvent.Action


def login(user) -> Client:
    client = Client()
    assert client.login(username=user.username, password="pw-" + user.username)
    return client


def run(*args) -> str:
    out = StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def events(action: str) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(action=action).order_by("id"))


def event_text(event: AuditEvent) -> str:
    """Everything an event stores, as one text to search for secrets."""
    return json.dumps({f.attname: str(getattr(event, f.attname)) for f in event._meta.fields})


@pytest.fixture
def root(django_user_model):
    return django_user_model.objects.create_superuser("root", password="pw-root")


@pytest.fixture
def plain_product(acme_tenant):
    """A product without DNS, for trails that do not touch PowerDNS."""
    return product_create(tenant=acme_tenant, slug="plain")


class TestTokenTrail:
    def test_a_token_created_in_the_admin_is_recorded_with_its_creator(self, alice, plain_product):
        response = login(alice).post(reverse("admin:tenants_apitoken_add"),
                                     {"product": plain_product.pk, "name": "ci"})
        plaintext = response.content.decode().split('id="token-plaintext"')[1] \
            .split(">")[1].split("<")[0]
        [event] = events(Action.TOKEN_CREATED)
        token = ApiToken.objects.get(name="ci")
        assert (event.tenant, event.user, event.actor) == (plain_product.tenant, alice, "alice")
        assert event.object_id == token.pk and token.key_id in event.object_repr
        assert event.changes["product"] == [None, "acme/plain"]
        assert plaintext not in event_text(event)
        assert token.digest not in event_text(event)

    def test_revoking_in_the_admin_is_recorded_once(self, alice, plain_product):
        token, _ = token_create(tenant=plain_product.tenant, product=plain_product, name="old")
        client = login(alice)
        for _ in range(2):  # the second revocation changes nothing and records nothing
            client.post(reverse("admin:tenants_apitoken_changelist"),
                        {"action": "revoke", "_selected_action": [token.pk]})
        [event] = events(Action.TOKEN_REVOKED)
        assert (event.user, event.object_id) == (alice, token.pk)
        assert event.changes["revoked_at"][0] is None

    def test_editing_a_tokens_expiry_is_recorded(self, alice, plain_product):
        token, _ = token_create(tenant=plain_product.tenant, product=plain_product, name="t")
        response = login(alice).post(
            reverse("admin:tenants_apitoken_change", args=[token.pk]),
            {"name": "renamed", "expires_at_0": "2030-01-01", "expires_at_1": "00:00:00"})
        assert response.status_code == 302, response.content.decode()[-2000:]
        [event] = events(Action.TOKEN_CHANGED)
        assert event.changes["name"] == ["t", "renamed"]
        assert event.changes["expires_at"][0] is None
        assert event.changes["expires_at"][1].startswith("2030-01-01")

    def test_deleting_a_token_in_the_admin_is_recorded(self, alice, plain_product):
        token, _ = token_create(tenant=plain_product.tenant, product=plain_product, name="gone")
        login(alice).post(reverse("admin:tenants_apitoken_delete", args=[token.pk]),
                          {"post": "yes"})
        assert not ApiToken.objects.filter(pk=token.pk).exists()
        [event] = events(Action.TOKEN_DELETED)
        assert (event.user, event.object_id) == (alice, token.pk)

    def test_the_create_token_command_records_the_operator(self, plain_product):
        plaintext = run("create_token", "acme", "plain", "--name", "cmd").strip()
        [event] = events(Action.TOKEN_CREATED)
        assert event.user is None and event.actor.startswith("operator command")
        assert plaintext not in event_text(event)


class TestProductTrail:
    def test_alice_creating_changing_and_deleting_a_product_is_recorded(
        self, alice, acme_tenant, run_id
    ):
        client = login(alice)
        slug = f"aud{run_id}"
        form = {"tenant": acme_tenant.pk, "slug": slug, "name": "Audited",
                "address_ipv4": "127.0.0.1", "address_ipv6": "::1",
                "created_at_0": "2026-01-01", "created_at_1": "00:00:00"}
        response = client.post(reverse("admin:tenants_product_add"), form)
        assert response.status_code == 302, response.content.decode()[-2000:]
        product = Product.objects.get(slug=slug)
        try:
            change_url = reverse("admin:tenants_product_change", args=[product.pk])
            response = client.post(change_url, {**form, "name": "Renamed"})
            assert response.status_code == 302
            client.post(reverse("admin:tenants_product_delete", args=[product.pk]),
                        {"post": "yes"})
            assert not Product.objects.filter(pk=product.pk).exists()
        finally:
            product_dns_remove(product.zone)

        trail = list(AuditEvent.objects.filter(object_type="product").order_by("id"))
        assert [e.action for e in trail] == [Action.PRODUCT_CREATED, Action.PRODUCT_CHANGED,
                                            Action.PRODUCT_DELETED]
        assert {(e.user, e.actor, e.tenant) for e in trail} == {(alice, "alice", acme_tenant)}
        created, changed, deleted = trail
        assert created.changes["zone"] == [None, product.zone]
        assert changed.changes == {"name": ["Audited", "Renamed"]}
        assert deleted.object_id == product.pk and deleted.object_repr == f"acme/{slug}"

    def test_a_quota_change_is_a_quota_changed_event(self, root, plain_product):
        url = reverse("admin:tenants_product_change", args=[plain_product.pk])
        page = login(root).get(url).content.decode()
        assert "quota_certificates" in page
        form = {"tenant": plain_product.tenant_id, "slug": "plain", "name": "Plain Renamed",
                "zone": plain_product.zone, "max_names": 10, "quota_certificates": 50,
                "quota_window_days": 7, "quota_hostnames": "", "address_ipv4": "127.0.0.1",
                "address_ipv6": "::1", "legacy_subject": "",
                "created_at_0": "2026-01-01", "created_at_1": "00:00:00"}
        try:
            response = login(root).post(url, form)
            assert response.status_code == 302, response.content.decode()[-2000:]
        finally:
            product_dns_remove(plain_product.zone)
        [quota] = events(Action.QUOTA_CHANGED)
        [changed] = events(Action.PRODUCT_CHANGED)
        assert quota.changes == {"quota_certificates": [None, 50]} and quota.user == root
        assert changed.changes["name"] == ["plain", "Plain Renamed"]

    def test_a_tenant_cap_change_is_a_quota_changed_event(self, root, acme_tenant):
        response = login(root).post(
            reverse("admin:tenants_tenant_change", args=[acme_tenant.pk]),
            {"slug": "acme", "name": "Acme Software", "max_certificates_per_window": 100,
             "created_at_0": "2026-01-01", "created_at_1": "00:00:00",
             "memberships-TOTAL_FORMS": 0, "memberships-INITIAL_FORMS": 0})
        assert response.status_code == 302, response.content.decode()[-2000:]
        [event] = events(Action.QUOTA_CHANGED)
        assert event.changes == {"max_certificates_per_window": [None, 100]}
        assert event.object_type == "tenant"

    def test_the_create_commands_record_the_operator(self, run_id):
        slug = f"aud-{run_id}"
        run("create_tenant", slug, "--name", "Audited Publisher")
        zone = run("create_product", slug, "shop").strip()
        product_dns_remove(zone)
        tenant = Tenant.objects.get(slug=slug)
        trail = list(tenant.audit_events.order_by("id"))
        assert [e.action for e in trail] == [Action.TENANT_CREATED, Action.PRODUCT_CREATED]
        assert all(e.actor.startswith("operator command") and e.user is None for e in trail)
        assert trail[1].changes["zone"] == [None, zone]


class TestAuditIsolation:
    @pytest.fixture
    def two_trails(self, acme_tenant, globex_tenant):
        product_create(tenant=acme_tenant, slug="mine", actor="operator command")
        product_create(tenant=globex_tenant, slug="theirs", actor="operator command")
        return AuditEvent.objects.get(object_repr="globex/theirs")

    def test_alice_sees_only_her_tenants_events(self, alice, two_trails):
        page = login(alice).get(reverse("admin:tenants_auditevent_changelist")).content.decode()
        assert "acme/mine" in page
        assert "globex/theirs" not in page and "globex" not in page

    def test_alice_cannot_open_bobs_event(self, alice, two_trails):
        response = login(alice).get(
            reverse("admin:tenants_auditevent_change", args=[two_trails.pk]))
        assert response.status_code in (302, 404)
        assert "theirs" not in response.content.decode()

    def test_the_trail_is_read_only_even_for_superusers(self, root, two_trails):
        client = login(root)
        page = client.get(reverse("admin:tenants_auditevent_change", args=[two_trails.pk]))
        assert page.status_code == 200 and 'name="_save"' not in page.content.decode()
        client.post(reverse("admin:tenants_auditevent_delete", args=[two_trails.pk]),
                    {"post": "yes"})
        assert AuditEvent.objects.filter(pk=two_trails.pk).exists()

    def test_the_trail_filters_by_action_and_date(self, root, two_trails):
        url = reverse("admin:tenants_auditevent_changelist")
        today = timezone.now()
        page = login(root).get(url, {"action": "product-created", "at__year": today.year,
                                     "at__month": today.month, "at__day": today.day})
        assert page.status_code == 200
        assert "globex/theirs" in page.content.decode()
        page = login(root).get(url, {"action": "token-revoked"})
        assert "globex/theirs" not in page.content.decode()

    def test_the_tenant_filter_offers_alice_only_her_tenant(self, alice, two_trails):
        client = login(alice)
        url = reverse("admin:tenants_auditevent_changelist")
        globex_id = two_trails.tenant_id
        assert f"?tenant={globex_id}" not in client.get(url).content.decode()
        # Asking for bob's tenant anyway gives an empty list, and nonsense no server error.
        page = client.get(url, {"tenant": globex_id}).content.decode()
        assert "theirs" not in page and "acme/mine" not in page
        assert client.get(url, {"tenant": "x"}).status_code == 302  # Django's "?e=1"

    def test_charlie_without_tenant_sees_nothing(self, charlie, two_trails):
        response = login(charlie).get(reverse("admin:tenants_auditevent_changelist"))
        assert response.status_code == 403


class TestRequestEventList:
    @pytest.fixture
    def two_requests(self, acme_tenant, globex_tenant):
        for tenant, slug in ((acme_tenant, "mine"), (globex_tenant, "theirs")):
            product = product_create(tenant=tenant, slug=slug)
            request = CertificateRequest.objects.create(
                tenant=tenant, product=product, csr_pem="-", names=[f"h.{product.zone}"],
                key_type="ec-p256", public_key_sha256="0" * 64,
                deadline_at=timezone.now())
            RequestEvent.objects.create(request=request, status="pending", step="order",
                                        message=f"submitted for h.{product.zone}")

    def test_alice_lists_only_her_requests_events(self, alice, two_requests):
        client = login(alice)
        page = client.get(reverse("admin:signing_requestevent_changelist")).content.decode()
        assert "mine.acme" in page and "theirs.globex" not in page
        filtered = client.get(reverse("admin:signing_requestevent_changelist"),
                              {"status": "pending"}).content.decode()
        assert "mine.acme" in filtered

    def test_bobs_events_cannot_be_opened_by_alice(self, alice, two_requests):
        event = RequestEvent.objects.get(request__tenant__slug="globex")
        response = login(alice).get(
            reverse("admin:signing_requestevent_change", args=[event.pk]))
        assert response.status_code in (302, 404)
        assert "theirs" not in response.content.decode()
