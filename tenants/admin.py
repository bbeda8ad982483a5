"""Admin for publishers, products and tokens (tenant-scoped for publisher staff)."""
from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.options import IncorrectLookupParameters
from django.db import transaction
from django.http import HttpResponseRedirect
from django.template.response import TemplateResponse

from dns_provisioning.powerdns import PowerDnsError
from dns_provisioning.services import product_dns_remove, product_dns_sync

from .admin_scoping import ReadOnlyAdmin, TenantScopedAdmin, user_tenant_ids
from .models import ApiToken, AuditEvent, Membership, Product, Tenant
from .services import (
    TENANT_AUDITED_FIELDS,
    TOKEN_AUDITED_FIELDS,
    field_snapshot,
    product_audit_saved,
    product_default_zone,
    product_delete,
    product_snapshot,
    tenant_audit_saved,
    token_audit_changed,
    token_create,
    token_delete,
    token_revoke,
)


class TenantListFilter(admin.SimpleListFilter):
    """Filter by tenant, offering only the tenants the user may see.

    Django's stock related-field filter lists every tenant, which would show publisher staff
    the names of all the other publishers; this one lists their own tenants only.
    """

    title = "tenant"
    parameter_name = "tenant"
    tenant_path = "tenant"  # the lookup from the listed model to its tenant

    def lookups(self, request, model_admin):
        tenants = Tenant.objects.all()
        if not request.user.is_superuser:
            tenants = tenants.filter(pk__in=user_tenant_ids(request.user))
        return [(str(t.pk), t.slug) for t in tenants]

    def queryset(self, request, queryset):
        return _filter_by_id(queryset, self.tenant_path, self.value())


class ProductListFilter(admin.SimpleListFilter):
    """Filter by product, offering only the products of the user's tenants."""

    title = "product"
    parameter_name = "product"
    product_path = "product"

    def lookups(self, request, model_admin):
        products = Product.objects.select_related("tenant")
        if not request.user.is_superuser:
            products = products.filter(tenant__in=user_tenant_ids(request.user))
        return [(str(p.pk), str(p)) for p in products]

    def queryset(self, request, queryset):
        return _filter_by_id(queryset, self.product_path, self.value())


def _filter_by_id(queryset, lookup: str, value: str | None):
    """Apply a list filter's id; a malformed one is the admin's "incorrect lookup" (it shows
    the list again with an error marker) rather than a server error."""
    if value is None:
        return queryset
    if not value.isdigit():
        raise IncorrectLookupParameters(f"{lookup}: {value!r} is not an id")
    return queryset.filter(**{lookup: int(value)})


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    autocomplete_fields = ["user"]


@admin.register(Tenant)
class TenantAdmin(TenantScopedAdmin):
    tenant_path = "pk"
    staff_can_add = staff_can_delete = False
    list_display = ["slug", "name", "created_at"]
    search_fields = ["slug", "name"]

    def get_inlines(self, request, obj):
        return [MembershipInline] if request.user.is_superuser else []

    def get_readonly_fields(self, request, obj=None):
        return [] if request.user.is_superuser else ["slug", "max_certificates_per_window"]

    def save_model(self, request, obj, form, change):
        stored = Tenant.objects.filter(pk=obj.pk).first() if change else None
        before = field_snapshot(stored, TENANT_AUDITED_FIELDS) if stored else None
        with transaction.atomic():
            super().save_model(request, obj, form, change)
            tenant_audit_saved(tenant=obj, before=before, actor=request.user)


class ProductForm(forms.ModelForm):
    class Meta:
        model = Product
        fields = "__all__"

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if "zone" in self.fields:
            self.fields["zone"].required = False

    def clean(self):
        data = super().clean()
        new_or_editable = self.instance.pk is None or "zone" in self.fields
        if new_or_editable and not data.get("zone") and data.get("tenant") and data.get("slug"):
            data["zone"] = product_default_zone(tenant=data["tenant"], slug=data["slug"])
            self.instance.zone = data["zone"]
        return data


@admin.register(Product)
class ProductAdmin(TenantScopedAdmin):
    form = ProductForm
    list_display = ["__str__", "zone", "allow_wildcard", "max_names", "quota_certificates"]
    list_filter = ["allow_wildcard", TenantListFilter]
    search_fields = ["slug", "zone", "tenant__slug"]

    def get_readonly_fields(self, request, obj=None):
        if request.user.is_superuser:
            return []
        # A publisher choosing its own zone could obtain certificates for any domain.
        return ["zone", "legacy_subject", "max_names", "quota_certificates",
                "quota_window_days", "quota_hostnames"]

    def save_model(self, request, obj, form, change):
        before = product_snapshot(obj)
        previous = before["zone"] if before else None
        try:
            with transaction.atomic():
                super().save_model(request, obj, form, change)
                product_audit_saved(product=obj, before=before, actor=request.user)
                product_dns_sync(obj, previous_zone=previous)
        except PowerDnsError as exc:
            messages.error(request, f"Not saved: PowerDNS refused the change ({exc}).")
            raise _Aborted() from None

    def delete_model(self, request, obj):
        with transaction.atomic():
            zone = obj.zone
            product_delete(product=obj, actor=request.user)
            product_dns_remove(zone)

    def delete_queryset(self, request, queryset):
        # The bulk "delete selected" action: one by one, so each product's DNS goes too and
        # each deletion is recorded.
        for product in queryset:
            self.delete_model(request, product)

    def changeform_view(self, request, *args, **kwargs):
        try:
            return super().changeform_view(request, *args, **kwargs)
        except _Aborted:
            return HttpResponseRedirect(request.get_full_path())


class _Aborted(Exception):
    """Raised to roll back an admin save when PowerDNS refused it."""


class ApiTokenForm(forms.ModelForm):
    """A product gives a client token; a tenant alone gives a reporting token, which reads
    the tenant's requests and ``GET /api/v1/usage/`` but submits nothing."""

    class Meta:
        model = ApiToken
        fields = ["product", "tenant", "name", "expires_at"]
        help_texts = {
            "product": "For a client token (installations submit CSRs with it).",
            "tenant": "Only for a reporting token: leave the product empty.",
        }

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if "tenant" in self.fields:
            self.fields["tenant"].required = False

    def clean(self):
        data = super().clean()
        product, tenant = data.get("product"), data.get("tenant")
        if product is not None:
            if tenant is not None and tenant != product.tenant:
                self.add_error("tenant", "Leave it empty or choose the product's tenant.")
            data["tenant"] = product.tenant
        elif tenant is None and not self.errors:
            raise forms.ValidationError(
                "Choose a product for a client token, or only a tenant for a reporting token.")
        return data


@admin.register(ApiToken)
class ApiTokenAdmin(TenantScopedAdmin):
    list_display = ["__str__", "tenant", "product", "created_at", "expires_at", "revoked_at",
                    "last_used_at"]
    list_filter = [TenantListFilter]
    search_fields = ["name", "key_id"]
    actions = ["revoke"]

    def get_form(self, request, obj=None, **kwargs):
        if obj is None:
            kwargs["form"] = ApiTokenForm
        return super().get_form(request, obj, **kwargs)

    def get_fields(self, request, obj=None):
        if obj is None:
            return ["product", "tenant", "name", "expires_at"]
        return ["tenant", "product", "name", "key_id", "created_at", "created_by", "expires_at",
                "revoked_at", "last_used_at"]

    def get_readonly_fields(self, request, obj=None):
        if obj is None:
            return []
        return ["tenant", "product", "key_id", "created_at", "created_by", "revoked_at",
                "last_used_at"]

    def add_view(self, request, form_url="", extra_context=None):
        if request.method != "POST":
            return super().add_view(request, form_url, extra_context)
        # The admin's own form class: its product and tenant choices are the user's only.
        form = self.get_form(request)(request.POST)
        if not form.is_valid():  # the stock view shows the same errors, and saves nothing
            return super().add_view(request, form_url, extra_context)
        data = form.cleaned_data
        token, plaintext = token_create(
            tenant=data["tenant"], product=data["product"], name=data["name"],
            expires_at=data["expires_at"], actor=request.user,
        )
        # Rendered once, in this response only: never stored, never put in a message cookie.
        context = {**self.admin_site.each_context(request), "token": token,
                   "plaintext": plaintext, "opts": self.model._meta,
                   "title": "Token created"}
        template = ("admin/tenants/token_created.html" if token.product_id else
                    "admin/reports/reporting_token_created.html")
        response = TemplateResponse(request, template, context)
        response["Cache-Control"] = "no-store"
        return response

    def save_model(self, request, obj, form, change):
        if not change:  # adding goes through add_view and token_create
            return super().save_model(request, obj, form, change)
        stored = ApiToken.objects.select_related("product").get(pk=obj.pk)
        before = field_snapshot(stored, TOKEN_AUDITED_FIELDS)
        with transaction.atomic():
            super().save_model(request, obj, form, change)
            token_audit_changed(token=obj, before=before, actor=request.user)

    def delete_model(self, request, obj):
        token_delete(token=obj, actor=request.user)

    def delete_queryset(self, request, queryset):
        for token in queryset:
            token_delete(token=token, actor=request.user)

    @admin.action(description="Revoke selected tokens")
    def revoke(self, request, queryset):
        revoked = sum(token_revoke(token=token, actor=request.user) for token in queryset)
        self.message_user(request, f"Revoked {revoked} token(s).")


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnlyAdmin):
    """The configuration trail: read-only for everyone, staff see their tenant's only."""

    list_display = ["at", "tenant", "action", "object_repr", "actor", "changes_summary"]
    list_filter = ["action", TenantListFilter, "object_type"]
    date_hierarchy = "at"
    search_fields = ["object_repr", "actor"]
    list_select_related = ["tenant"]
    fields = ["at", "tenant", "action", "object_type", "object_id", "object_repr", "actor",
              "user", "changes"]
    readonly_fields = fields

    @admin.display(description="changes")
    def changes_summary(self, obj: AuditEvent) -> str:
        """One short line; the event's page has them all."""
        if all(old is None for old, _ in obj.changes.values()):  # created: the values
            text = ", ".join(f"{field}={new}" for field, (_, new) in obj.changes.items()
                             if new not in (None, ""))
        else:
            text = "; ".join(f"{field}: {old!r} → {new!r}" for field, (old, new)
                             in obj.changes.items())
        return text if len(text) <= 90 else text[:89] + "…"
