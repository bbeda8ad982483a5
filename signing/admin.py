"""Admin for requests (with their audit trail), certificates and ACME accounts."""
from __future__ import annotations

from django import forms
from django.contrib import admin

from tenants.admin_scoping import TenantScopedAdmin

from .accounts import account_set_eab_hmac_key
from .models import (
    AcmeAccount,
    Certificate,
    CertificateRequest,
    ProductAcmeAccount,
    RequestEvent,
)


class RequestEventInline(admin.TabularInline):
    model = RequestEvent
    extra = 0
    can_delete = False
    fields = ["at", "status", "step", "message", "actor"]
    readonly_fields = fields

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


class CertificateInline(admin.StackedInline):
    model = Certificate
    extra = 0
    can_delete = False
    fields = ["serial", "subject", "issuer", "not_before", "not_after", "chain_pem"]
    readonly_fields = fields

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(CertificateRequest)
class CertificateRequestAdmin(TenantScopedAdmin):
    """Read-only: requests change only through the flow; the admin shows their history."""

    staff_can_add = staff_can_delete = False
    list_display = ["id", "product", "names", "status", "step", "created_at", "finished_at"]
    list_filter = ["status", "step", "product__tenant", "product"]
    search_fields = ["id", "names", "public_key_sha256"]
    date_hierarchy = "created_at"
    inlines = [CertificateInline, RequestEventInline]
    exclude = ["authorizations"]
    list_select_related = ["product__tenant"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(Certificate)
class CertificateAdmin(TenantScopedAdmin):
    tenant_path = "request__tenant"
    staff_can_add = staff_can_delete = False
    list_display = ["serial", "subject", "request", "not_after", "created_at"]
    search_fields = ["serial", "subject"]
    readonly_fields = ["request", "serial", "subject", "issuer", "not_before", "not_after",
                       "chain_pem", "created_at"]

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class AcmeAccountForm(forms.ModelForm):
    eab_hmac_key = forms.CharField(
        label="EAB HMAC key", required=False, widget=forms.PasswordInput(render_value=False),
        help_text="Write-only: stored encrypted, never shown. Leave empty to keep the current.",
    )

    class Meta:
        model = AcmeAccount
        fields = ["name", "directory_url", "contact_email", "eab_kid", "eab_hmac_key",
                  "tls_ca_file", "profile", "is_default"]

    def save(self, commit=True):
        if self.cleaned_data.get("eab_hmac_key"):
            account_set_eab_hmac_key(self.instance, self.cleaned_data["eab_hmac_key"])
        return super().save(commit)


class ProductBindingInline(admin.TabularInline):
    model = ProductAcmeAccount
    extra = 0
    autocomplete_fields = ["product"]
    verbose_name_plural = "products ordering from this account (others use the default)"


@admin.register(AcmeAccount)
class AcmeAccountAdmin(admin.ModelAdmin):
    """Operator only (superusers): ACME accounts are shared by every tenant."""

    form = AcmeAccountForm
    inlines = [ProductBindingInline]
    list_display = ["name", "directory_url", "is_default", "account_url", "created_at"]
    readonly_fields = ["account_url", "created_at"]
