"""Usage reports at scale: the admin's usage pages and ``GET /api/v1/usage/`` over a million
certificates.

Fills a database of its own (``csrproxy_usagebench``; created when missing, migrated) with
1,000,000 issued certificates and their requests, 5 % more failed requests and a few in
flight, spread over 4 tenants, 12 products and 120 days, with INSERT ... SELECT over
generate_series (one transaction: a run either fills it all or leaves nothing). A second
run finds it filled and only measures. Then it times each page in-process with Django's
test client (logged-in staff and superuser, a tenant reporting token), a few runs each,
and prints the median; the target is under a second per page.

    .venv/bin/python bench/usage_report.py [--certificates 1000000] [--runs 5] [--refill]
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script: make the project importable
    sys.path.insert(0, str(ROOT))

DEFAULT_DATABASE_URL = "postgres://csrproxy:csrproxy@127.0.0.1:5432/csrproxy_usagebench"
TENANT_PREFIX = "ub-"
# slug -> (share of the traffic in per mille, products, tenant cap)
TENANTS = {
    "ub-large": (500, 4, 20000),
    "ub-medium": (250, 3, None),
    "ub-small": (150, 3, 5000),
    "ub-tiny": (100, 2, None),
}
DAYS_OF_HISTORY = 120
FAILED_SHARE = 0.05
IN_FLIGHT = 200
HOSTNAMES_PER_PRODUCT = 40000  # installations renew: names repeat across certificates
TARGET_SECONDS = 1.0


def log(message: str) -> None:
    sys.stderr.write(f"usage-bench: {message}\n")
    sys.stderr.flush()


def database_ensure(url: str) -> None:
    """Create the bench database if it does not exist (as the postgres superuser, like the
    stack scripts do), owned by the service's user."""
    parsed = urlparse(url)
    name, owner = parsed.path.lstrip("/"), parsed.username or "csrproxy"
    psql = ["psql", "-h", parsed.hostname or "127.0.0.1", "-p", str(parsed.port or 5432),
            "-U", "postgres", "-d", "postgres", "-tAc"]
    exists = subprocess.run([*psql, f"SELECT 1 FROM pg_database WHERE datname = '{name}'"],
                            capture_output=True, text=True, check=True).stdout.strip()
    if not exists:
        log(f"creating database {name}")
        subprocess.run([*psql, f'CREATE DATABASE "{name}" OWNER "{owner}"'], check=True,
                       capture_output=True)


def django_setup(database_url: str) -> None:
    os.environ["DATABASE_URL"] = database_url  # never the service's own database
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "csrproxy.settings")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    call_command("createcachetable", verbosity=0)


# --- fill ---------------------------------------------------------------------------------

def _random_text(uuids: int) -> str:
    """SQL for incompressible text of about 36 x ``uuids`` characters: PEM-sized rows, so
    the tables have their real size (repeated text would shrink to nothing in TOAST)."""
    return " || ".join(["gen_random_uuid()::text"] * uuids)


def bench_is_filled() -> bool:
    from tenants.models import Tenant

    return Tenant.objects.filter(slug__startswith=TENANT_PREFIX).exists()


def bench_empty() -> None:
    """Remove an earlier fill (for --refill): requests first, they protect their tenant."""
    from django.db import connection

    from tenants.models import Tenant

    ids = list(Tenant.objects.filter(slug__startswith=TENANT_PREFIX).values_list("pk",
                                                                                flat=True))
    if not ids:
        return
    with connection.cursor() as cursor:
        cursor.execute("""DELETE FROM signing_certificate c USING signing_certificaterequest r
                          WHERE c.request_id = r.id AND r.tenant_id = ANY(%s)""", [ids])
        cursor.execute("DELETE FROM signing_requestevent e USING signing_certificaterequest r"
                       " WHERE e.request_id = r.id AND r.tenant_id = ANY(%s)", [ids])
        cursor.execute("DELETE FROM signing_certificaterequest WHERE tenant_id = ANY(%s)",
                       [ids])
    Tenant.objects.filter(pk__in=ids).delete()


def bench_fill(certificates: int) -> dict[str, int]:
    """Tenants and products through the services, then the history in three statements."""
    from django.db import connection, transaction
    from django.utils import timezone

    from tenants.models import Product
    from tenants.services import product_create, tenant_create

    actor = "usage bench"
    with transaction.atomic():
        slots, low = [], 0
        for slug, (share, products, cap) in TENANTS.items():
            tenant = tenant_create(slug=slug, name=f"Usage bench {slug}", actor=actor)
            tenant.max_certificates_per_window = cap
            tenant.save(update_fields=["max_certificates_per_window"])
            for index in range(products):
                product = product_create(tenant=tenant, slug=f"p{index + 1}", actor=actor)
                Product.objects.filter(pk=product.pk).update(
                    quota_certificates=5000 if index == 0 else None,
                    quota_hostnames=4000 if index == 0 else None,
                    quota_window_days=(7, 30, 1, 14)[index % 4])
                high = low + share // products + (share % products if index == 0 else 0)
                slots.append((product.pk, tenant.pk, low, high))
                low = high
        assert low == 1000, "shares must add up to 1000 per mille"

        now = timezone.now()
        with connection.cursor() as cursor:
            cursor.execute("SELECT setseed(0.42)")
            cursor.execute("CREATE TEMPORARY TABLE bench_slots (product_id bigint, "
                           "tenant_id bigint, lo int, hi int) ON COMMIT DROP")
            cursor.executemany("INSERT INTO bench_slots VALUES (%s, %s, %s, %s)", slots)
            requests = _insert_requests(cursor, now, certificates, "valid")
            requests += _insert_requests(cursor, now, int(certificates * FAILED_SHARE),
                                         "invalid")
            requests += _insert_requests(cursor, now, IN_FLIGHT, "processing")
            cursor.execute(f"""
                INSERT INTO signing_certificate (request_id, chain_pem, serial, subject, issuer,
                                                 not_before, not_after, created_at)
                SELECT r.id, {_random_text(72)}, to_hex(r.id), 'CN=' || (r.names ->> 0),
                       'CN=Usage Bench CA', r.finished_at, r.finished_at + interval '90 days',
                       r.finished_at
                FROM signing_certificaterequest r
                JOIN bench_slots s ON s.product_id = r.product_id
                WHERE r.status = 'valid'
            """)  # noqa: S608 (no input in the SQL)
            issued = cursor.rowcount
    return {"requests": requests, "certificates": issued}


def _insert_requests(cursor, now, count: int, status: str) -> int:
    """``count`` requests of ``status``: products by their share, submission times spread
    over the history (in-flight ones over the last hour), finished a minute later at most."""
    spread = "interval '1 hour'" if status == "processing" else \
        f"interval '{DAYS_OF_HISTORY} days'"
    finished = "NULL" if status == "processing" else "x.created + random() * interval '60 s'"
    step = "verify" if status == "processing" else "done"
    error = ("""'{"type": "urn:ietf:params:acme:error:dns", "detail": "bench"}'::jsonb"""
             if status == "invalid" else "NULL")
    cursor.execute(f"""
        INSERT INTO signing_certificaterequest (
            tenant_id, product_id, csr_pem, names, key_type, public_key_sha256,
            idempotency_key, status, step, error, order_url, finalize_url, certificate_url,
            authorizations, attempts, polls, next_attempt_at, deadline_at, created_at,
            updated_at, finished_at)
        SELECT x.tenant_id, x.product_id, {_random_text(16)},
               CASE WHEN x.g %% 5 = 0
                    THEN jsonb_build_array(x.host || '.' || p.zone,
                                           'www.' || x.host || '.' || p.zone)
                    ELSE jsonb_build_array(x.host || '.' || p.zone) END,
               'ec-p256', md5(x.g::text || %(status)s) || md5(x.g::text), '', %(status)s,
               %(step)s, {error}, '', '', '', '[]'::jsonb, 0, 0, x.created,
               x.created + interval '1 hour', x.created, x.created, {finished}
        FROM (
            SELECT g, s.tenant_id, s.product_id,
                   'host' || (g::bigint * 7919 %% %(hostnames)s) AS host,
                   %(now)s - random() * {spread} AS created
            FROM generate_series(1, %(count)s) AS g
            JOIN bench_slots s ON g %% 1000 >= s.lo AND g %% 1000 < s.hi
        ) x
        JOIN tenants_product p ON p.id = x.product_id
    """, {"status": status, "step": step, "now": now, "count": count,  # noqa: S608
          "hostnames": HOSTNAMES_PER_PRODUCT})
    return cursor.rowcount


def vacuum_analyze() -> None:
    """What autovacuum does on its own after a while: statistics for the planner and the
    visibility map that lets the report read the index alone."""
    from django.db import connection

    with connection.cursor() as cursor:
        for table in ("signing_certificaterequest", "signing_certificate", "tenants_product"):
            cursor.execute(f"VACUUM (ANALYZE) {table}")


# --- measure ------------------------------------------------------------------------------

@dataclass(frozen=True)
class Timing:
    label: str
    median: float
    fastest: float
    slowest: float
    queries: int
    size: int


def measure(label: str, get: Callable[[], object], runs: int) -> Timing:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    response = get()  # warm: connection, templates, plans
    assert response.status_code == 200, (label, response.status_code, response.content[:500])
    seconds = []
    for _ in range(runs):
        with CaptureQueriesContext(connection) as queries:
            started = time.perf_counter()
            response = get()
            seconds.append(time.perf_counter() - started)
        assert response.status_code == 200, (label, response.status_code)
    return Timing(label, statistics.median(seconds), min(seconds), max(seconds),
                  len(queries), len(response.content))


def clients():
    """A staff member of the largest tenant, a superuser and a tenant reporting token."""
    from django.contrib.auth.models import User
    from django.test import Client
    from rest_framework.test import APIClient

    from tenants.models import ApiToken, Membership, Tenant
    from tenants.services import token_create

    large = Tenant.objects.get(slug="ub-large")
    staff, _ = User.objects.get_or_create(username="ub-staff", defaults={"is_staff": True})
    Membership.objects.get_or_create(user=staff, tenant=large)
    root, _ = User.objects.get_or_create(username="ub-root",
                                         defaults={"is_staff": True, "is_superuser": True})
    ApiToken.objects.filter(tenant=large, name="usage-bench").delete()
    token = token_create(tenant=large, product=None, name="usage-bench", actor="usage bench")[1]

    def logged_in(user) -> Client:
        client = Client(HTTP_HOST="127.0.0.1")  # the settings' ALLOWED_HOSTS, not testserver
        client.force_login(user)
        return client

    api = APIClient(HTTP_HOST="127.0.0.1")
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return large, logged_in(staff), logged_in(root), api


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", default=os.environ.get("USAGE_BENCH_DATABASE_URL",
                                                                 DEFAULT_DATABASE_URL))
    parser.add_argument("--certificates", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--refill", action="store_true", help="empty and fill again")
    args = parser.parse_args(argv)

    database_ensure(args.database_url)
    django_setup(args.database_url)
    if args.refill:
        bench_empty()
    if bench_is_filled():
        print("fill: already filled, not refilled (--refill to start over)")
    else:
        log(f"filling {args.certificates:,} certificates (takes a few minutes)")
        started = time.perf_counter()
        counts = bench_fill(args.certificates)
        filled = time.perf_counter() - started
        started = time.perf_counter()
        vacuum_analyze()
        print(f"fill: {counts['requests']:,} requests, {counts['certificates']:,} certificates "
              f"in {filled:.1f} s (+ VACUUM ANALYZE {time.perf_counter() - started:.1f} s)")

    from django.db import connection
    from django.urls import reverse

    from signing.models import Certificate, CertificateRequest

    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_size_pretty(pg_database_size(current_database()))")
        size = cursor.fetchone()[0]
    print(f"database: {CertificateRequest.objects.count():,} requests, "
          f"{Certificate.objects.count():,} certificates, {size}")

    large, staff, root, api = clients()
    tenant_page = reverse("admin:tenants_usagereport_tenant", args=[large.pk])
    overview = reverse("admin:tenants_usagereport_changelist")
    csv_export = reverse("admin:tenants_usagereport_csv", args=[large.pk])
    cases = [
        ("admin usage, staff, 30 days", lambda: staff.get(tenant_page, {"days": 30})),
        ("admin usage, staff, 90 days", lambda: staff.get(tenant_page, {"days": 90})),
        ("admin usage, superuser, all tenants, 90 days",
         lambda: root.get(overview, {"days": 90})),
        ("admin usage, superuser, one tenant, 90 days",
         lambda: root.get(tenant_page, {"days": 90})),
        ("admin usage CSV, staff, 90 days", lambda: staff.get(csv_export, {"days": 90})),
        ("GET /api/v1/usage/?days=30", lambda: api.get("/api/v1/usage/", {"days": 30})),
        ("GET /api/v1/usage/?days=90", lambda: api.get("/api/v1/usage/", {"days": 90})),
    ]
    timings = [measure(label, get, args.runs) for label, get in cases]

    width = max(len(t.label) for t in timings)
    print(f"\n{'page':<{width}}  {'median':>8}  {'fastest':>8}  {'slowest':>8}  "
          f"{'queries':>7}  {'bytes':>7}  target < {TARGET_SECONDS:.0f} s")
    for t in timings:
        verdict = "ok" if t.median < TARGET_SECONDS else "SLOW"
        print(f"{t.label:<{width}}  {t.median * 1000:>6.0f}ms  {t.fastest * 1000:>6.0f}ms  "
              f"{t.slowest * 1000:>6.0f}ms  {t.queries:>7}  {t.size:>7}  {verdict}")
    print(f"({args.runs} runs each after a warm-up; in-process test client, no HTTP server)")
    return 0 if all(t.median < TARGET_SECONDS for t in timings) else 1


if __name__ == "__main__":
    sys.exit(main())
