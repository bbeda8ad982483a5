"""The CA budget guard: never send an order that the CA's rate limits would refuse.

Checked by the order step just before newOrder, under a lock per ACME account, so two
workers cannot both take the last slot. An admitted request is stamped
``order_started_at``; the windows count those stamps (including orders still in flight,
which is conservative: the CA counts them too once they issue).
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone

from .models import CaBudget, CertificateRequest

WEEK = timedelta(days=7)
THREE_HOURS = timedelta(hours=3)


@dataclass(frozen=True)
class OverBudget:
    """The request does not fit: ``until`` is when it will, ``rule`` says which limit."""

    rule: str
    until: datetime
    refuse: bool


def budget_admit(req: CertificateRequest) -> OverBudget | None:
    """Stamp the request as ordered if every budget of its account allows it.

    A budget guards the requests for names in its domain, but its order limit counts every
    order of the account, as the CA does: so with budgets, every order of the account is
    stamped under the lock, guarded or not. An account without budgets counts nothing: the
    stamp is then left to the request's next save, and no lock is taken.
    """
    budgets = list(CaBudget.objects.filter(account_id=req.acme_account_id))
    if not budgets:
        req.order_started_at = timezone.now()
        return None
    budgets = [budget for budget in budgets
               if any(_within(name, budget.registered_domain) for name in req.names)]
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(hashtext(%s))",
                           [f"ca-budget:{req.acme_account_id}"])
        now = timezone.now()
        for budget in budgets:
            over = _over(budget, req, now)
            if over is not None:
                return over
        # Counted by the next request's check as soon as the lock is released.
        CertificateRequest.objects.filter(pk=req.pk).update(
            order_started_at=now, acme_account=req.acme_account_id)
        req.order_started_at = now
    return None


def _within(name: str, domain: str) -> bool:
    name = name.removeprefix("*.")
    return name == domain or name.endswith("." + domain)


def _over(budget: CaBudget, req: CertificateRequest, now: datetime) -> OverBudget | None:
    ordered = (CertificateRequest.objects.filter(acme_account_id=req.acme_account_id,
                                                 order_started_at__isnull=False)
               .exclude(pk=req.pk))
    refuse = budget.when_exceeded == CaBudget.WhenExceeded.REFUSE
    checks = []
    if budget.orders_per_three_hours is not None:
        checks.append((f"{budget.orders_per_three_hours} new orders per 3 hours",
                       ordered, THREE_HOURS, budget.orders_per_three_hours))
    # A request's names all lie in one product zone: its first name tells its domain.
    domain = budget.registered_domain
    in_domain = ordered.exclude(status=CertificateRequest.Status.INVALID).filter(
        Q(names__0=domain) | Q(names__0__endswith="." + domain))
    if budget.certificates_per_domain_per_week is not None:
        checks.append((f"{budget.certificates_per_domain_per_week} certificates per week for "
                       f"{domain}", in_domain, WEEK, budget.certificates_per_domain_per_week))
    if budget.certificates_per_name_set_per_week is not None:
        same_names = [pk for pk, names in in_domain.filter(order_started_at__gte=now - WEEK)
                      .filter(names__contains=req.names).values_list("pk", "names")
                      if set(names) == set(req.names)]
        issued = in_domain
        checks.append((f"{budget.certificates_per_name_set_per_week} certificates per week "
                       "for the same names", issued.filter(pk__in=same_names), WEEK,
                       budget.certificates_per_name_set_per_week))
    for rule, qs, window, limit in checks:
        stamps = list(qs.filter(order_started_at__gte=now - window)
                      .order_by("order_started_at").values_list("order_started_at", flat=True))
        if len(stamps) >= limit:
            # Frees up when enough of the oldest leave the window.
            return OverBudget(rule, stamps[len(stamps) - limit] + window, refuse)
    return None
