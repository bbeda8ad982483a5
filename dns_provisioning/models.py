"""Every challenge TXT value CSR Proxy publishes, with its owner, so cleanup removes exactly it."""
from __future__ import annotations

from django.db import models
from django.utils import timezone


class ChallengeRecord(models.Model):
    """One `_acme-challenge` TXT value. The RRset at ``name`` is always written whole from the
    live records of all owners (PowerDNS 4.7 can only REPLACE an RRset)."""

    owner = models.CharField(max_length=64, db_index=True, help_text='e.g. "request:42"')
    zone = models.CharField(max_length=253, help_text="PowerDNS zone holding the RRset.")
    name = models.CharField(max_length=253)
    value = models.CharField(max_length=128)
    created_at = models.DateTimeField(default=timezone.now)
    removed_at = models.DateTimeField(null=True, blank=True)
    # Set on every change, cleared once PowerDNS holds the RRset as the database says.
    needs_sync = models.BooleanField(default=True)

    class Meta:
        indexes = [
            models.Index(fields=["name"], condition=models.Q(removed_at__isnull=True),
                         name="challenge_live_by_name"),
            models.Index(fields=["name"], condition=models.Q(needs_sync=True),
                         name="challenge_unsynced_by_name"),
        ]

    def __str__(self) -> str:
        return f"{self.name} TXT ({self.owner})"
