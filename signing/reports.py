"""Usage figures per tenant and product: certificates issued, failures, quota use, and
issuance per day. Read-only selectors behind the admin's usage pages, their CSV export and
``GET /api/v1/usage/``.

Every figure family is one aggregate query that PostgreSQL answers from an index, whatever
the number of requests: the report of a tenant with a million certificates costs the same
handful of queries as one with ten. Python only rolls up the aggregated rows (products x
days) and fills the days without issuance with zeros.

Counting rules, shared by every figure:

* issued: requests that ended ``valid`` in the period, dated by ``finished_at``. The flow
  stores the certificate and sets ``valid``/``finished_at`` in one transaction, so this is
  exactly the number of certificates issued, read from one index instead of a join with the
  (large) chain table;
* failed: requests that ended ``invalid`` in the period, dated by ``finished_at``;
* the period of ``days`` days ends now and starts at midnight (UTC) ``days - 1`` days ago,
  so it covers exactly the ``days`` bars of the chart;
* quota used: requests submitted within the rolling window that did not end ``invalid``,
  exactly what the quota check at submission counts (``signing.quotas``): a request counts
  from its submission, so a burst cannot overrun a quota before its certificates exist, and
  a failed request gives its slot back.
"""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Count, DateTimeField, ExpressionWrapper, F, Q, Value
from django.db.models.functions import TruncDate
from django.utils import timezone

from tenants.models import Product, Tenant

from .models import CertificateRequest

Status = CertificateRequest.Status

REPORT_PERIODS_DAYS = (30, 90)
DEFAULT_PERIOD_DAYS = REPORT_PERIODS_DAYS[0]


def tenant_cap_window_days() -> int:
    """The window of Tenant.max_certificates_per_window: the one the quota check enforces
    (``TENANT_QUOTA_WINDOW_DAYS``, 7 days by default, Let's Encrypt's window)."""
    return settings.TENANT_QUOTA_WINDOW_DAYS


@dataclass(frozen=True)
class DayCount:
    day: date
    issued: int = 0
    failed: int = 0


@dataclass(frozen=True)
class Quota:
    """Use of one limit over its rolling window. ``limit`` None: no limit."""

    limit: int | None
    used: int
    window_days: int

    @property
    def left(self) -> int | None:
        return None if self.limit is None else max(self.limit - self.used, 0)


@dataclass(frozen=True)
class ProductUsage:
    product: Product
    issued: int
    failed: int
    certificates: Quota
    hostnames: Quota
    daily: list[DayCount]


@dataclass(frozen=True)
class TenantUsage:
    tenant: Tenant
    days: int
    since: datetime
    certificates: Quota  # the tenant's cap over all its products
    products: list[ProductUsage] = field(default_factory=list)
    daily: list[DayCount] = field(default_factory=list)

    @property
    def issued(self) -> int:
        return sum(p.issued for p in self.products)

    @property
    def failed(self) -> int:
        return sum(p.failed for p in self.products)


def period_start(*, days: int, now: datetime) -> datetime:
    """Midnight UTC ``days - 1`` days before ``now``: the first bar of a ``days`` chart."""
    first_day = now.astimezone(UTC).date() - timedelta(days=days - 1)
    return datetime.combine(first_day, time.min, tzinfo=UTC)


def tenant_usage(*, tenant: Tenant, days: int, now: datetime | None = None) -> TenantUsage:
    return usage_report(tenants=[tenant], days=days, now=now)[0]


def usage_report(
    *, tenants: Iterable[Tenant], days: int, now: datetime | None = None
) -> list[TenantUsage]:
    """The usage of each of ``tenants`` (already scoped by the caller) over ``days`` days.

    Four queries in all: products, outcomes per product and day, quota windows, hostnames.
    """
    if days < 1:
        raise ValueError("days must be at least 1")
    now = now or timezone.now()
    tenants = list(tenants)
    tenant_ids = [t.pk for t in tenants]
    since = period_start(days=days, now=now)
    products = list(Product.objects.filter(tenant_id__in=tenant_ids).order_by("slug", "pk"))

    cap_window = tenant_cap_window_days()
    longest_window = max([p.quota_window_days for p in products] + [cap_window])
    with _without_jit():
        outcomes = _outcomes_by_product_and_day(tenant_ids, since)
        in_window, in_tenant_window = _requests_in_quota_windows(
            tenant_ids, now, longest_window, cap_window)
        hostnames = _hostnames_in_quota_windows(tenant_ids, now, longest_window)

    day_list = [since.date() + timedelta(days=i) for i in range(days)]
    by_tenant: dict[int, list[ProductUsage]] = defaultdict(list)
    for product in products:
        daily = [DayCount(day, *outcomes.get((product.pk, day), (0, 0))) for day in day_list]
        by_tenant[product.tenant_id].append(ProductUsage(
            product=product,
            issued=sum(d.issued for d in daily),
            failed=sum(d.failed for d in daily),
            certificates=Quota(product.quota_certificates, in_window.get(product.pk, 0),
                               product.quota_window_days),
            hostnames=Quota(product.quota_hostnames, hostnames.get(product.pk, 0),
                            product.quota_window_days),
            daily=daily,
        ))

    report = []
    for tenant in tenants:
        usages = by_tenant[tenant.pk]
        cap_used = sum(in_tenant_window.get(u.product.pk, 0) for u in usages)
        report.append(TenantUsage(
            tenant=tenant, days=days, since=since,
            certificates=Quota(tenant.max_certificates_per_window, cap_used, cap_window),
            products=usages,
            daily=daily_sum([u.daily for u in usages], day_list),
        ))
    return report


def daily_sum(series: list[list[DayCount]], day_list: list[date]) -> list[DayCount]:
    """Several daily series over the same days added up, day by day."""
    return [DayCount(day, sum(s[i].issued for s in series), sum(s[i].failed for s in series))
            for i, day in enumerate(day_list)]


def usage_daily_rows(usage: TenantUsage) -> Iterator[tuple[date, str, int, int]]:
    """(day, product slug, issued, failed) for every day and product, zero days included:
    the CSV export's rows."""
    for index, day in enumerate(d.day for d in usage.daily):
        for product_usage in usage.products:
            counts = product_usage.daily[index]
            yield day, product_usage.product.slug, counts.issued, counts.failed


# --- the aggregate queries ----------------------------------------------------------------

@contextmanager
def _without_jit() -> Iterator[None]:
    """Run the report's queries without PostgreSQL's JIT compilation, in this transaction
    only. Their cost estimates (an unnested JSON array is guessed at 100 names) pass
    ``jit_above_cost`` although they run in tens of milliseconds, and compiling took 30 to
    130 ms per query on a million requests: more than the queries themselves."""
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SET LOCAL jit = off")
        yield


def _outcomes_by_product_and_day(
    tenant_ids: list[int], since: datetime
) -> dict[tuple[int, date], tuple[int, int]]:
    """{(product id, day): (issued, failed)}: one pass over the finished requests' index
    (tenant, status, finished_at) including the product, so no table row is read."""
    rows = (
        CertificateRequest.objects
        .filter(tenant_id__in=tenant_ids, status__in=CertificateRequest.FINISHED,
                finished_at__gte=since)
        .annotate(day=TruncDate("finished_at", tzinfo=UTC))
        .values_list("product_id", "day", "status")
        .annotate(n=Count("*"))
        .order_by()
    )
    outcomes: dict[tuple[int, date], tuple[int, int]] = {}
    for product_id, day, status, n in rows:
        issued, failed = outcomes.get((product_id, day), (0, 0))
        if status == Status.VALID:
            issued += n
        else:
            failed += n
        outcomes[(product_id, day)] = (issued, failed)
    return outcomes


def _requests_in_quota_windows(
    tenant_ids: list[int], now: datetime, longest_window_days: int, cap_window_days: int
) -> tuple[dict[int, int], dict[int, int]]:
    """Per product: requests holding a quota slot in the product's own rolling window, and
    in the tenant cap's window. One scan of the (tenant, created_at) index over the longest
    window; each product's window is applied in the database."""
    product_window_start = ExpressionWrapper(
        Value(now) - F("product__quota_window_days") * Value(timedelta(days=1)),
        output_field=DateTimeField(),
    )
    rows = (
        CertificateRequest.objects
        .filter(tenant_id__in=tenant_ids,
                created_at__gte=now - timedelta(days=longest_window_days))
        .exclude(status=Status.INVALID)
        .values_list("product_id")
        .annotate(
            # Counting product_id (never null) rather than id keeps to the index's columns.
            in_product_window=Count("product", filter=Q(created_at__gte=product_window_start)),
            in_tenant_window=Count(
                "product", filter=Q(created_at__gte=now - timedelta(days=cap_window_days))),
        )
        .order_by()
    )
    in_window, in_tenant_window = {}, {}
    for product_id, product_count, tenant_count in rows:
        in_window[product_id] = product_count
        in_tenant_window[product_id] = tenant_count
    return in_window, in_tenant_window


def _hostnames_in_quota_windows(
    tenant_ids: list[int], now: datetime, longest_window_days: int
) -> dict[int, int]:
    """Per product: distinct names in the requests that hold a quota slot in its window.

    Raw SQL because counting distinct elements of a JSON array needs the array unnested in a
    FROM clause (LATERAL), which the ORM cannot express.
    """
    requests = CertificateRequest._meta.db_table
    products = Product._meta.db_table
    sql = f"""
        SELECT r.product_id, count(DISTINCT name.value)
        FROM {requests} r
        JOIN {products} p ON p.id = r.product_id
        CROSS JOIN LATERAL jsonb_array_elements_text(r.names) AS name(value)
        WHERE r.tenant_id = ANY(%(tenant_ids)s)
          AND r.created_at >= %(longest_window_start)s
          AND r.created_at >= %(now)s - p.quota_window_days * interval '1 day'
          AND r.status <> %(invalid)s
        GROUP BY r.product_id
    """  # noqa: S608 (table names come from the models, values are parameters)
    params = {
        "tenant_ids": tenant_ids, "now": now, "invalid": Status.INVALID.value,
        "longest_window_start": now - timedelta(days=longest_window_days),
    }
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return dict(cursor.fetchall())
