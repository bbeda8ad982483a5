"""The CA budget guard: N per window pass, the rest wait (with the right time) or are refused."""
from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from signing.budget import budget_admit
from signing.models import AcmeAccount, CaBudget, CertificateRequest
from signing.services import request_submit
from tests.csrs import make_csr

pytestmark = pytest.mark.django_db


@pytest.fixture
def account():
    return AcmeAccount.objects.create(name="le", directory_url="https://ca.example/dir")


def submitted(product, account, name: str) -> CertificateRequest:
    req, _ = request_submit(product=product, csr_data=make_csr([name]))
    req.acme_account = account
    req.save()
    return req


def admitted_at(req: CertificateRequest, when) -> None:
    CertificateRequest.objects.filter(pk=req.pk).update(order_started_at=when)


class TestOrdersPerWindow:
    def test_n_pass_and_the_next_waits_until_the_oldest_leaves_the_window(self, acme_product,
                                                                          account):
        CaBudget.objects.create(account=account, registered_domain="csrproxy.test",
                                orders_per_three_hours=3)
        base = timezone.now() - timedelta(hours=1)
        for i in range(3):
            req = submitted(acme_product, account, f"o{i}.{acme_product.zone}")
            assert budget_admit(req) is None
            admitted_at(req, base + timedelta(minutes=i))
        waiting = submitted(acme_product, account, f"o3.{acme_product.zone}")
        over = budget_admit(waiting)
        assert over is not None and not over.refuse
        assert over.until == base + timedelta(hours=3)
        assert "3 new orders per 3 hours" in over.rule
        waiting.refresh_from_db()
        assert waiting.order_started_at is None  # not admitted: never sent to the CA

    def test_refuse_mode_refuses(self, acme_product, account):
        CaBudget.objects.create(account=account, registered_domain="csrproxy.test",
                                orders_per_three_hours=1, when_exceeded="refuse")
        assert budget_admit(submitted(acme_product, account, f"a.{acme_product.zone}")) is None
        over = budget_admit(submitted(acme_product, account, f"b.{acme_product.zone}"))
        assert over is not None and over.refuse


class TestCertificateLimits:
    def test_the_same_name_set_is_limited_per_week(self, acme_product, account):
        CaBudget.objects.create(account=account, registered_domain="csrproxy.test",
                                certificates_per_name_set_per_week=2,
                                orders_per_three_hours=None)
        name = f"same.{acme_product.zone}"
        for _ in range(2):
            assert budget_admit(submitted(acme_product, account, name)) is None
        assert budget_admit(submitted(acme_product, account, f"other.{acme_product.zone}")) is None
        over = budget_admit(submitted(acme_product, account, name))
        assert over is not None and "same names" in over.rule

    def test_refused_requests_do_not_count_for_certificates(self, acme_product, account):
        CaBudget.objects.create(account=account, registered_domain="csrproxy.test",
                                certificates_per_domain_per_week=1,
                                orders_per_three_hours=None)
        first = submitted(acme_product, account, f"x.{acme_product.zone}")
        assert budget_admit(first) is None
        CertificateRequest.objects.filter(pk=first.pk).update(status="invalid")
        assert budget_admit(submitted(acme_product, account, f"y.{acme_product.zone}")) is None

    def test_other_domains_are_not_counted(self, acme_product, account):
        CaBudget.objects.create(account=account, registered_domain="example.org",
                                orders_per_three_hours=1)
        for i in range(3):
            assert budget_admit(submitted(acme_product, account,
                                          f"n{i}.{acme_product.zone}")) is None


class TestStamping:
    def test_an_account_without_budgets_leaves_the_stamp_to_the_next_save(self, acme_product,
                                                                         account):
        req = submitted(acme_product, account, f"s.{acme_product.zone}")
        assert budget_admit(req) is None
        assert req.order_started_at is not None
        req.refresh_from_db()
        assert req.order_started_at is None  # written with the request's next step

    def test_with_budgets_every_order_of_the_account_is_stamped_at_once(self, acme_product,
                                                                       account):
        # An order limit counts all of the account's orders, covered names or not.
        CaBudget.objects.create(account=account, registered_domain="elsewhere.example",
                                orders_per_three_hours=5)
        req = submitted(acme_product, account, f"t.{acme_product.zone}")
        assert budget_admit(req) is None
        req.refresh_from_db()
        assert req.order_started_at is not None
