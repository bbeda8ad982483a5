"""What the rest of CSR Proxy asks of DNS: product subtrees and challenge TXT values.

Products under the base zone live as records inside the base zone; a product with a zone
of its own (delegated to PowerDNS by the publisher) gets a PowerDNS zone of its own.
"""
from __future__ import annotations

import logging
from collections.abc import Iterable

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone

from tenants.models import Product

from . import powerdns
from .models import ChallengeRecord

log = logging.getLogger(__name__)


def is_within(name: str, zone: str) -> bool:
    """True when ``name`` is ``zone`` or below it, on a label boundary."""
    return name == zone or name.endswith("." + zone)


def host_zone(product_zone: str) -> str:
    """The PowerDNS zone whose RRsets hold the names of ``product_zone``."""
    base = settings.CSRPROXY_BASE_ZONE
    return base if is_within(product_zone, base) else product_zone


def zone_ensure(zone: str) -> None:
    if powerdns.zone_exists(zone):
        return
    nameservers = settings.PDNS_NAMESERVERS or [f"ns1.{zone}"]
    glue = []
    if not settings.PDNS_NAMESERVERS:
        # Development: the zone names its own loopback nameserver.
        glue = [powerdns.rrset(f"ns1.{zone}", "A", ["127.0.0.1"])]
    powerdns.zone_create(zone, nameservers, glue)


def _address_rrsets(zone: str, ipv4: str | None, ipv6: str | None) -> list[dict]:
    rrsets = []
    for name in (zone, f"*.{zone}"):
        rrsets.append(powerdns.rrset(name, "A", [ipv4] if ipv4 else []))
        rrsets.append(powerdns.rrset(name, "AAAA", [ipv6] if ipv6 else []))
    return rrsets


def product_dns_sync(product: Product, previous_zone: str | None = None) -> None:
    """Make PowerDNS serve the product's subtree: apex and wildcard A/AAAA records.

    ``previous_zone``: the product's zone before an edit, whose records are then removed.
    """
    if previous_zone and previous_zone != product.zone:
        product_dns_remove(previous_zone)
    zone = host_zone(product.zone)
    zone_ensure(zone)
    powerdns.rrsets_patch(
        zone, _address_rrsets(product.zone, product.address_ipv4, product.address_ipv6)
    )
    log.info("DNS for product %s: %s in zone %s", product, product.zone, zone)


def product_dns_remove(product_zone: str) -> None:
    zone = host_zone(product_zone)
    if zone == product_zone:
        if powerdns.zone_exists(zone):
            powerdns.zone_delete(zone)
        return
    powerdns.rrsets_patch(zone, _address_rrsets(product_zone, None, None))
    log.info("DNS records of %s removed from zone %s", product_zone, zone)


# --- challenge TXT values -----------------------------------------------------------------

def txt_publish(*, owner: str, product_zone: str, values: Iterable[tuple[str, str]]) -> None:
    """Publish the owner's (name, value) pairs beside any other owner's values at those names.

    Idempotent: publishing the same pairs again rewrites the same RRsets. The records are
    committed before PowerDNS is called, so the database always knows every value that may
    be served (a failed write leaves them ``needs_sync`` for the janitor).
    """
    zone = host_zone(product_zone)
    pairs = set(values)
    live = set(ChallengeRecord.objects.filter(owner=owner, removed_at__isnull=True)
               .values_list("name", "value"))
    ChallengeRecord.objects.bulk_create(
        ChallengeRecord(owner=owner, zone=zone, name=name, value=value)
        for name, value in sorted(pairs - live))
    _rrsets_sync(zone, {name for name, _ in pairs})


def txt_withdraw(*, owner: str) -> None:
    """Remove every value the owner published; other owners' values at the names stay.

    Also rewrites the owner's names whose last write failed (PowerDNS was down).
    """
    mine = ChallengeRecord.objects.filter(owner=owner)
    targets = set(mine.filter(Q(removed_at__isnull=True) | Q(needs_sync=True))
                  .values_list("zone", "name"))
    mine.filter(removed_at__isnull=True).update(removed_at=timezone.now(), needs_sync=True)
    by_zone: dict[str, set[str]] = {}
    for zone, name in targets:
        by_zone.setdefault(zone, set()).add(name)
    for zone, names in by_zone.items():
        _rrsets_sync(zone, names)


def txt_served(*, owner: str) -> bool:
    """Are all the owner's live values visible on every authoritative server we query?

    Answering a challenge before that burns the authorization (Let's Encrypt never re-checks).
    """
    wanted: dict[str, set[str]] = {}
    for name, value in ChallengeRecord.objects.filter(
        owner=owner, removed_at__isnull=True
    ).values_list("name", "value"):
        wanted.setdefault(name, set()).add(value)
    for server in settings.PDNS_DNS_SERVERS:
        for name, values in wanted.items():
            if not values <= set(powerdns.query(server, name, "TXT")):
                return False
    return True


def txt_resync_pending() -> int:
    """Janitor: rewrite every RRset whose last write did not reach PowerDNS."""
    pending = set(
        ChallengeRecord.objects.filter(needs_sync=True).values_list("zone", "name")
    )
    for zone, name in pending:
        _rrsets_sync(zone, {name})
    return len(pending)


def _rrsets_sync(zone: str, names: set[str]) -> None:
    """Write each name's TXT RRset as the live records say, under a per-name lock.

    The lock (a PostgreSQL advisory lock per name, taken in sorted order so two callers
    cannot deadlock) makes read-the-values and write-the-RRset one step: two requests
    sharing a name can never overwrite each other's value.
    """
    if not names:
        return
    ordered = sorted(names)
    with transaction.atomic():
        with connection.cursor() as cursor:
            for name in ordered:
                cursor.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", [f"txt:{name}"])
        values: dict[str, list[str]] = {name: [] for name in ordered}
        for name, value in (
            ChallengeRecord.objects.filter(name__in=ordered, removed_at__isnull=True)
            .order_by("id")
            .values_list("name", "value")
        ):
            if value not in values[name]:
                values[name].append(value)
        powerdns.rrsets_patch(
            zone,
            [
                powerdns.rrset(name, "TXT", [powerdns.txt_content(v) for v in vals],
                               ttl=settings.CHALLENGE_TXT_TTL)
                for name, vals in values.items()
            ],
        )
        ChallengeRecord.objects.filter(name__in=ordered, needs_sync=True).update(needs_sync=False)
