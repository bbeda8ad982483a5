"""Usage reports: the figures against the raw records, the API's scoping, the CSV export and
the admin pages' tenant isolation over HTTP."""
from __future__ import annotations

import csv
import io
import re
import secrets
from collections import Counter
from datetime import UTC, datetime, time, timedelta

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient

from signing.models import Certificate, CertificateRequest
from signing.reports import tenant_cap_window_days, tenant_usage, usage_report
from tenants.models import ApiToken, Product, Tenant
from tenants.services import product_create, token_create, token_revoke

pytestmark = pytest.mark.django_db

VALID, INVALID = CertificateRequest.Status.VALID, CertificateRequest.Status.INVALID


def login(user) -> Client:
    client = Client()
    assert client.login(username=user.username, password="pw-" + user.username)
    return client


def bearer(token: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return client


def add_request(product: Product, *, status: str, age: timedelta, names: list[str],
                takes: timedelta = timedelta(minutes=2)) -> CertificateRequest:
    """A request submitted ``age`` ago; a finished one ended ``takes`` later (a valid one
    with its certificate, issued at that moment)."""
    created = timezone.now() - age
    finished = created + takes if status in (VALID, INVALID) else None
    request = CertificateRequest.objects.create(
        tenant=product.tenant, product=product, csr_pem="-----BEGIN CERTIFICATE REQUEST-----",
        names=[f"{name}.{product.zone}" for name in names], key_type="ec-p256",
        public_key_sha256=secrets.token_hex(32), status=status,
        step="done" if finished else "verify", created_at=created, finished_at=finished,
        deadline_at=created + timedelta(hours=1),
    )
    if status == VALID:
        Certificate.objects.create(
            request=request, chain_pem="-----BEGIN CERTIFICATE-----", serial=secrets.token_hex(8),
            subject="", issuer="Pebble", not_before=finished, not_after=finished + timedelta(90),
            created_at=finished)
    return request


# (status, age in days, names): ages stay clear of the window edges (7 and 30 days) and of
# the period starts, so the few milliseconds between the fixture and the report change
# nothing.
HISTORY = [
    (VALID, 0.01, ["a", "b"]), (VALID, 1, ["a"]), (VALID, 3, ["c"]), (VALID, 3.2, ["d", "e"]),
    (VALID, 10, ["f"]), (VALID, 20, ["a"]), (VALID, 45, ["g"]), (VALID, 60, ["g"]),
    (VALID, 100, ["h"]),
    (INVALID, 0.5, ["x"]), (INVALID, 2, ["y"]), (INVALID, 25, ["a"]), (INVALID, 50, ["z"]),
    ("pending", 0.05, ["p"]), ("processing", 1.5, ["q", "a"]),
]


@pytest.fixture
def history(acme_tenant, globex_tenant):
    """acme: two products (a 7-day quota of 5 certificates and 4 hostnames; a 30-day window
    without limits) and a cap of 10; globex: one product, no cap. Each product gets the
    whole HISTORY, globex's a shifted copy so no two products have the same figures."""
    acme_tenant.max_certificates_per_window = 10
    acme_tenant.save()
    app = product_create(tenant=acme_tenant, slug="app")
    Product.objects.filter(pk=app.pk).update(quota_certificates=5, quota_hostnames=4)
    tools = product_create(tenant=acme_tenant, slug="tools")
    Product.objects.filter(pk=tools.pk).update(quota_window_days=30)
    portal = product_create(tenant=globex_tenant, slug="portal")
    for product, shift in ((app, 0), (tools, 0), (portal, 0.3)):
        for status, age, names in HISTORY[: 12 if product == tools else None]:
            add_request(product, status=status, age=timedelta(days=age + shift), names=names)
    return {p.slug: Product.objects.get(pk=p.pk) for p in (app, tools, portal)}


def expected_figures(product: Product, days: int, now: datetime) -> dict:
    """The figures of one product, counted straight from the rows (certificates by their
    own date, not through the requests' status as the report does)."""
    since = datetime.combine(now.astimezone(UTC).date() - timedelta(days=days - 1), time.min,
                             tzinfo=UTC)
    certificates = Certificate.objects.filter(request__product=product, created_at__gte=since)
    holding = CertificateRequest.objects.filter(
        product=product, created_at__gte=now - timedelta(days=product.quota_window_days)
    ).exclude(status=INVALID)
    return {
        "issued": certificates.count(),
        "failed": CertificateRequest.objects.filter(product=product, status=INVALID,
                                                    finished_at__gte=since).count(),
        "issued_per_day": Counter(c.created_at.astimezone(UTC).date() for c in certificates),
        "certificates_used": holding.count(),
        "hostnames_used": len({name for r in holding for name in r.names}),
    }


class TestUsageFigures:
    @pytest.mark.parametrize("days", [30, 90])
    def test_the_report_matches_the_raw_records(self, history, acme_tenant, globex_tenant,
                                                 days):
        now = timezone.now()
        report = usage_report(tenants=[acme_tenant, globex_tenant], days=days, now=now)
        assert [u.tenant.slug for u in report] == ["acme", "globex"]
        products = [p for usage in report for p in usage.products]
        assert [p.product.slug for p in products] == ["app", "tools", "portal"]
        for usage in products:
            expected = expected_figures(usage.product, days, now)
            assert usage.issued == expected["issued"]
            assert usage.failed == expected["failed"]
            assert usage.certificates.used == expected["certificates_used"]
            assert usage.hostnames.used == expected["hostnames_used"]
            assert len(usage.daily) == days
            assert {d.day: d.issued for d in usage.daily if d.issued} == \
                expected["issued_per_day"]
            assert sum(d.failed for d in usage.daily) == expected["failed"]

    def test_the_periods_count_what_they_should(self, history, acme_tenant):
        """Hand-counted from HISTORY, as a check on the independent counting itself."""
        app_30 = tenant_usage(tenant=acme_tenant, days=30).products[0]
        app_90 = tenant_usage(tenant=acme_tenant, days=90).products[0]
        assert (app_30.issued, app_30.failed) == (6, 3)
        assert (app_90.issued, app_90.failed) == (8, 4)

    def test_quotas_count_the_requests_that_did_not_fail_in_the_rolling_window(
        self, history, acme_tenant
    ):
        app, tools = tenant_usage(tenant=acme_tenant, days=30).products
        # app, 7 days: valid at 0.01, 1, 3, 3.2 days, pending, processing; 6 of a quota of 5.
        assert (app.certificates.used, app.certificates.limit, app.certificates.left) == \
            (6, 5, 0)
        # names a, b, c, d, e, p, q: 7 distinct of 4 allowed.
        assert (app.hostnames.used, app.hostnames.left) == (7, 0)
        # tools, 30 days, no limits (HISTORY[:12]: no pending or processing request).
        assert (tools.certificates.used, tools.certificates.limit) == (6, None)
        assert tools.certificates.left is None and tools.hostnames.left is None

    def test_the_tenant_cap_counts_every_product_and_shows_no_limit_when_empty(
        self, history, acme_tenant, globex_tenant
    ):
        acme, globex = usage_report(tenants=[acme_tenant, globex_tenant], days=30)
        assert acme.certificates.window_days == tenant_cap_window_days() == 7
        # 7 days: app 6 (see above) + tools 4 (valid at 0.01, 1, 3, 3.2 days).
        assert (acme.certificates.used, acme.certificates.limit) == (10, 10)
        assert acme.certificates.left == 0
        assert globex.certificates.limit is None and globex.certificates.left is None

    def test_tenant_totals_and_days_add_up_the_products(self, history, acme_tenant):
        usage = tenant_usage(tenant=acme_tenant, days=90)
        assert usage.issued == sum(p.issued for p in usage.products)
        assert sum(d.issued for d in usage.daily) == usage.issued
        assert sum(d.failed for d in usage.daily) == usage.failed
        assert [d.day for d in usage.daily] == sorted({d.day for d in usage.daily})
        assert usage.daily[-1].day == timezone.now().astimezone(UTC).date()

    def test_the_cost_does_not_grow_with_tenants_products_or_requests(
        self, history, acme_tenant, globex_tenant
    ):
        with CaptureQueriesContext(connection) as queries:
            usage_report(tenants=[acme_tenant, globex_tenant], days=90)
        selects = [q["sql"] for q in queries if q["sql"].lstrip().startswith("SELECT")]
        assert len(selects) == 4  # products, outcomes, quota windows, hostnames

    def test_a_tenant_without_products_reports_zeros(self, db):
        tenant = Tenant.objects.create(slug="empty", name="Empty")
        usage = tenant_usage(tenant=tenant, days=30)
        assert (usage.issued, usage.failed, usage.products) == (0, 0, [])
        assert len(usage.daily) == 30


class TestUsageApi:
    @pytest.fixture
    def acme_reporting_token(self, history, acme_tenant):
        return token_create(tenant=acme_tenant, product=None, name="reports")[1]

    def test_a_tenant_token_reads_its_own_tenant_only(self, history, acme_reporting_token):
        response = bearer(acme_reporting_token).get("/api/v1/usage/?days=90")
        assert response.status_code == 200, response.content
        body = response.json()
        assert body["tenant"] == "acme" and body["days"] == 90
        assert [p["slug"] for p in body["products"]] == ["app", "tools"]
        now = timezone.now()
        for product in body["products"]:
            expected = expected_figures(history[product["slug"]], 90, now)
            assert (product["issued"], product["failed"]) == \
                (expected["issued"], expected["failed"])
            assert product["certificates"]["used"] == expected["certificates_used"]
            assert len(product["daily"]) == 90
        assert body["issued"] == sum(p["issued"] for p in body["products"])
        assert body["certificates"] == {"limit": 10, "used": 10, "left": 0, "window_days": 7}
        assert "portal" not in response.content.decode()

    def test_no_limit_is_null(self, history, globex_tenant):
        token = token_create(tenant=globex_tenant, product=None)[1]
        body = bearer(token).get("/api/v1/usage/").json()
        assert body["days"] == 30 and body["tenant"] == "globex"
        assert body["certificates"]["limit"] is None and body["certificates"]["left"] is None

    def test_a_product_token_is_refused(self, history):
        token = token_create(tenant=history["app"].tenant, product=history["app"])[1]
        response = bearer(token).get("/api/v1/usage/")
        assert response.status_code == 403
        assert response["Content-Type"] == "application/problem+json"
        assert response.json()["type"] == "urn:csrproxy:problem:forbidden"

    def test_an_unknown_period_is_a_problem(self, acme_reporting_token):
        response = bearer(acme_reporting_token).get("/api/v1/usage/?days=7")
        assert response.status_code == 400
        assert response["Content-Type"] == "application/problem+json"
        assert response.json()["subproblems"][0]["field"] == "days"

    def test_no_token_or_a_revoked_one_is_unauthorized(self, history, acme_tenant):
        token_row, token = token_create(tenant=acme_tenant, product=None)
        token_revoke(token=token_row)
        for client in (APIClient(), bearer(token)):
            response = client.get("/api/v1/usage/")
            assert response.status_code == 401
            assert response["Content-Type"] == "application/problem+json"

    def test_it_is_in_the_openapi_schema(self, client):
        schema = client.get("/api/schema/?format=json").json()
        operation = schema["paths"]["/api/v1/usage/"]["get"]
        assert {"200", "400", "401", "403"} <= set(operation["responses"])
        assert "application/problem+json" in operation["responses"]["403"]["content"]


class TestReportingTokenFromTheAdmin:
    def plaintext(self, response) -> str:
        return response.content.decode().split('id="token-plaintext"')[1].split(">")[1] \
            .split("<")[0]

    def test_alice_creates_a_reporting_token_that_reads_her_usage(self, alice, history):
        acme_id = history["app"].tenant_id
        response = login(alice).post(reverse("admin:tenants_apitoken_add"),
                                     {"tenant": acme_id, "name": "dashboard"})
        assert response.status_code == 200 and "no-store" in response["Cache-Control"]
        token = ApiToken.objects.get(name="dashboard")
        assert (token.tenant_id, token.product) == (acme_id, None)
        usage = bearer(self.plaintext(response)).get("/api/v1/usage/")
        assert usage.status_code == 200 and usage.json()["tenant"] == "acme"

    def test_a_product_token_still_takes_its_products_tenant(self, alice, history):
        response = login(alice).post(reverse("admin:tenants_apitoken_add"),
                                     {"product": history["app"].pk, "name": "client"})
        assert response.status_code == 200
        token = ApiToken.objects.get(name="client")
        assert (token.tenant_id, token.product_id) == (history["app"].tenant_id,
                                                       history["app"].pk)

    def test_alice_cannot_create_one_for_bobs_tenant_nor_an_empty_one(self, alice, history):
        client = login(alice)
        for form in ({"tenant": history["portal"].tenant_id, "name": "sneaky"},
                     {"name": "sneaky"},
                     {"product": history["app"].pk, "tenant": history["portal"].tenant_id,
                      "name": "sneaky"}):
            response = client.post(reverse("admin:tenants_apitoken_add"), form)
            assert response.status_code == 200
            assert "csrp_" not in response.content.decode()
        assert not ApiToken.objects.filter(name="sneaky").exists()


class TestUsageCsv:
    def test_it_has_every_day_and_product_of_the_tenant_only(self, history, alice):
        url = reverse("admin:tenants_usagereport_csv", args=[history["app"].tenant_id])
        response = login(alice).get(url + "?days=90")
        assert response.status_code == 200
        assert response["Content-Type"].startswith("text/csv")
        assert "attachment" in response["Content-Disposition"]
        rows = list(csv.DictReader(io.StringIO(response.content.decode())))
        assert len(rows) == 90 * 2
        assert {r["tenant"] for r in rows} == {"acme"}
        assert {r["product"] for r in rows} == {"app", "tools"}
        now = timezone.now()
        for slug in ("app", "tools"):
            expected = expected_figures(history[slug], 90, now)
            mine = [r for r in rows if r["product"] == slug]
            assert sum(int(r["issued"]) for r in mine) == expected["issued"]
            assert sum(int(r["failed"]) for r in mine) == expected["failed"]
            per_day = {r["date"]: int(r["issued"]) for r in mine if r["issued"] != "0"}
            assert per_day == {d.isoformat(): n for d, n in expected["issued_per_day"].items()}


class TestUsageAdminIsolation:
    def tenant_url(self, tenant_id: int, view: str = "tenant") -> str:
        return reverse(f"admin:tenants_usagereport_{view}", args=[tenant_id])

    def test_the_admin_index_links_to_the_usage_reports(self, alice, history):
        page = login(alice).get(reverse("admin:index")).content.decode()
        assert reverse("admin:tenants_usagereport_changelist") in page

    def test_alice_is_sent_from_the_overview_to_her_tenant(self, alice, history):
        response = login(alice).get(reverse("admin:tenants_usagereport_changelist"))
        assert response.status_code == 302
        assert response["Location"].startswith(self.tenant_url(alice.memberships.get().tenant_id))

    def test_alice_sees_her_figures_and_chart(self, alice, history):
        response = login(alice).get(self.tenant_url(history["app"].tenant_id) + "?days=90")
        page = response.content.decode()
        assert response.status_code == 200
        assert "<svg" in page and page.count('class="day"') == 90
        assert 'data-product="app"' in page and 'data-product="tools"' in page
        assert "portal" not in page and "globex" not in page.lower()

    def test_a_product_selection_draws_that_products_chart(self, alice, history):
        app = history["app"]
        page = login(alice).get(self.tenant_url(app.tenant_id) + f"?product={app.pk}")
        bars = re.findall(r'data-issued="(\d+)"', page.content.decode())
        assert len(bars) == 30
        assert sum(map(int, bars)) == expected_figures(app, 30, timezone.now())["issued"]

    def test_alice_cannot_open_bobs_usage_nor_its_csv(self, alice, history):
        client = login(alice)
        globex_id = history["portal"].tenant_id
        for view in ("tenant", "csv"):
            foreign = client.get(self.tenant_url(globex_id, view))
            missing = client.get(self.tenant_url(999_999, view))
            assert foreign.status_code == missing.status_code == 404
            assert "portal" not in foreign.content.decode()

    def test_charlie_without_tenant_gets_nothing(self, charlie, history):
        client = login(charlie)
        assert client.get(reverse("admin:tenants_usagereport_changelist")).status_code == 403
        response = client.get(self.tenant_url(history["app"].tenant_id))
        assert response.status_code == 403

    def test_anonymous_users_are_sent_to_the_login(self, client, history):
        response = client.get(self.tenant_url(history["app"].tenant_id))
        assert response.status_code == 302 and "/admin/login/" in response["Location"]

    def test_a_superuser_sees_every_tenant(self, django_user_model, history):
        root = django_user_model.objects.create_superuser("root", password="pw-root")
        client = login(root)
        page = client.get(reverse("admin:tenants_usagereport_changelist")).content.decode()
        assert 'data-tenant="acme"' in page and 'data-tenant="globex"' in page
        assert "<svg" in page
        response = client.get(self.tenant_url(history["portal"].tenant_id))
        assert response.status_code == 200 and 'data-product="portal"' in response.content.decode()
        assert "no limit" in response.content.decode()
