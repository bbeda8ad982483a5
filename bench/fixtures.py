"""What the bench needs inside its database: a tenant, products, tokens, an ACME account.

Created with the operator commands (``create_tenant``/``create_product``/``create_token``),
so the bench exercises what an operator does. Runs in the bench's own process after
``django.setup()`` on the bench database.
"""
from __future__ import annotations

from django.db import connection

from bench.stack import manage, service_env

TENANT = "bench"


def product_ensure(slug: str) -> str:
    """The bench product ``slug`` (zone ``<slug>.bench.csrproxy.test``); returns its zone.

    An existing product gets its DNS written again: PowerDNS may have been reset since.
    """
    from dns_provisioning.services import product_dns_sync
    from tenants.models import Product, Tenant

    env = service_env()
    if not Tenant.objects.filter(slug=TENANT).exists():
        manage("create_tenant", TENANT, "--name", "CSR Proxy bench", env=env)
    product = Product.objects.filter(tenant__slug=TENANT, slug=slug).first()
    if product is None:
        return manage("create_product", TENANT, slug, env=env).splitlines()[-1]
    product_dns_sync(product)
    return product.zone


def token_create(slug: str) -> str:
    """A new client token for the product (plaintext is shown once, never stored)."""
    return manage("create_token", TENANT, slug, "--name", "bench", env=service_env())


def account_make_default(name: str, directory_url: str, tls_ca: str) -> None:
    """Make a fresh ACME account the default one and register it now, untimed.

    A fresh account per run: Pebble forgets accounts when it restarts. Registering here
    keeps the account's creation (and its race between workers) out of the measurements.
    """
    from django.db import transaction

    from signing.accounts import account_access
    from signing.models import AcmeAccount

    with transaction.atomic():
        AcmeAccount.objects.filter(is_default=True).update(is_default=False)
        account = AcmeAccount.objects.create(name=name, directory_url=directory_url,
                                             tls_ca_file=tls_ca, is_default=True)
    account_access(account)


def requests_reset() -> int:
    """Empty the request tables of the bench database; returns how many requests there were.

    TXT values a crashed earlier run left in PowerDNS are withdrawn first (there is no
    sweeper in the bench), so nothing stays behind in the shared zone.
    """
    from dns_provisioning.models import ChallengeRecord
    from dns_provisioning.services import txt_withdraw
    from signing.models import CertificateRequest

    for owner in set(ChallengeRecord.objects.filter(removed_at__isnull=True)
                     .values_list("owner", flat=True)):
        txt_withdraw(owner=owner)
    count = CertificateRequest.objects.count()
    tables = [CertificateRequest._meta.db_table, ChallengeRecord._meta.db_table,
              *(r.related_model._meta.db_table for r in CertificateRequest._meta.related_objects)]
    with connection.cursor() as cursor:
        cursor.execute(f"TRUNCATE {', '.join(tables)} CASCADE")
    return count


def requests_cancel(ids: list[int]) -> int:
    """End unfinished requests of an aborted batch (their CA deadlocked and was restarted):
    their TXT values are withdrawn and they are marked done, so no worker resumes them."""
    from dns_provisioning.services import txt_withdraw
    from signing.models import CertificateRequest

    unfinished = CertificateRequest.objects.filter(pk__in=ids).exclude(step="done")
    pks = list(unfinished.values_list("pk", flat=True))
    for pk in pks:
        txt_withdraw(owner=f"request:{pk}")
    CertificateRequest.objects.filter(pk__in=pks).update(step="done", status="invalid")
    return len(pks)
