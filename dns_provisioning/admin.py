from django.contrib import admin

from .models import ChallengeRecord


@admin.register(ChallengeRecord)
class ChallengeRecordAdmin(admin.ModelAdmin):
    """Operator view of every challenge TXT value ever published (superusers only)."""

    list_display = ["name", "owner", "created_at", "removed_at", "needs_sync"]
    list_filter = ["needs_sync"]
    search_fields = ["name", "owner"]
    readonly_fields = ["owner", "zone", "name", "value", "created_at", "removed_at", "needs_sync"]

    def has_add_permission(self, request):
        return False
