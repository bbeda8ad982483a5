"""The sweeper: nothing accepted is ever forgotten.

Re-sends requests whose message was lost (broker down at submission, worker killed, delayed
message dropped) and removes TXT values whose owner has finished but did not clean up.
"""
from __future__ import annotations

import logging
from datetime import timedelta

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from dns_provisioning import services as dns
from dns_provisioning.models import ChallengeRecord
from dns_provisioning.powerdns import PowerDnsError

from .models import CertificateRequest
from .tasks import advance_request

log = logging.getLogger(__name__)
BATCH = 1000


def sweep_once() -> dict[str, int]:
    now = timezone.now()
    overdue = list(
        CertificateRequest.objects.exclude(step=CertificateRequest.Step.DONE)
        # this late, its own (delayed) message would have come by now: it was lost
        .filter(next_attempt_at__lt=now - timedelta(seconds=settings.SWEEPER_GRACE_SECONDS))
        .filter(Q(lease_until__isnull=True) | Q(lease_until__lt=now))
        .order_by("next_attempt_at")
        .values_list("pk", flat=True)[:BATCH]
    )
    for pk in overdue:
        advance_request.send(pk)
    orphans = _withdraw_orphaned_txt()
    try:
        resynced = dns.txt_resync_pending()
    except PowerDnsError as exc:
        log.warning("sweeper: TXT resync failed: %s", exc)
        resynced = 0
    if overdue or orphans or resynced:
        log.info("sweeper: re-sent %d requests, withdrew TXT of %d finished owners, "
                 "resynced %d RRsets", len(overdue), orphans, resynced)
    return {"resent": len(overdue), "orphans": orphans, "resynced": resynced}


def _withdraw_orphaned_txt() -> int:
    owners = set(
        ChallengeRecord.objects.filter(removed_at__isnull=True, owner__startswith="request:")
        .values_list("owner", flat=True)
    )
    ids = {int(o.removeprefix("request:")) for o in owners}
    done = CertificateRequest.objects.filter(pk__in=ids, step=CertificateRequest.Step.DONE)
    count = 0
    for req in done.only("pk"):
        try:
            dns.txt_withdraw(owner=req.owner_ref)
            count += 1
        except PowerDnsError as exc:
            log.warning("sweeper: could not withdraw TXT of request %s: %s", req.pk, exc)
    return count
