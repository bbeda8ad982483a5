"""Admin for publishers, products and tokens (tenant-scoped for publisher staff)."""
from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.db import transaction
from django.http import HttpResponseRedirect
from django.template.response import TemplateResponse

from dns_provisioning.powerdns import PowerDnsError
from dns_provisioning.services import product_dns_remove, product_dns_sync

from .admin_scoping import TenantScopedAdmin
from .models import ApiToken, Membership, Product, Tenant
from .services import product_default_zone, token_create, token_revoke


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
    list_filter = ["allow_wildcard", "tenant"]
    search_fields = ["slug", "zone", "tenant__slug"]

    def get_readonly_fields(self, request, obj=None):
        if request.user.is_superuser:
            return []
        # A publisher choosing its own zone could obtain certificates for any domain.
        return ["zone", "legacy_subject", "max_names", "quota_certificates",
                "quota_window_days", "quota_hostnames"]

    def save_model(self, request, obj, form, change):
        previous = Product.objects.filter(pk=obj.pk).values_list("zone", flat=True).first()
        try:
            with transaction.atomic():
                super().save_model(request, obj, form, change)
                product_dns_sync(obj, previous_zone=previous)
        except PowerDnsError as exc:
            messages.error(request, f"Not saved: PowerDNS refused the change ({exc}).")
            raise _Aborted() from None

    def delete_model(self, request, obj):
        with transaction.atomic():
            zone = obj.zone
            super().delete_model(request, obj)
            product_dns_remove(zone)

    def changeform_view(self, request, *args, **kwargs):
        try:
            return super().changeform_view(request, *args, **kwargs)
        except _Aborted:
            return HttpResponseRedirect(request.get_full_path())


class _Aborted(Exception):
    """Raised to roll back an admin save when PowerDNS refused it."""


class ApiTokenForm(forms.ModelForm):
    class Meta:
        model = ApiToken
        fields = ["product", "name", "expires_at"]


@admin.register(ApiToken)
class ApiTokenAdmin(TenantScopedAdmin):
    list_display = ["__str__", "tenant", "product", "created_at", "expires_at", "revoked_at",
                    "last_used_at"]
    list_filter = ["tenant"]
    search_fields = ["name", "key_id"]
    actions = ["revoke"]

    def get_form(self, request, obj=None, **kwargs):
        if obj is None:
            kwargs["form"] = ApiTokenForm
        return super().get_form(request, obj, **kwargs)

    def get_fields(self, request, obj=None):
        if obj is None:
            return ["product", "name", "expires_at"]
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
        form = ApiTokenForm(request.POST)
        form.fields["product"].queryset = self.formfield_for_foreignkey(
            ApiToken._meta.get_field("product"), request).queryset
        form.fields["product"].required = True
        if not form.is_valid():
            return super().add_view(request, form_url, extra_context)
        product = form.cleaned_data["product"]
        token, plaintext = token_create(
            tenant=product.tenant, product=product, name=form.cleaned_data["name"],
            expires_at=form.cleaned_data["expires_at"], created_by=request.user,
        )
        # Rendered once, in this response only: never stored, never put in a message cookie.
        context = {**self.admin_site.each_context(request), "token": token,
                   "plaintext": plaintext, "opts": self.model._meta,
                   "title": "Token created"}
        response = TemplateResponse(request, "admin/tenants/token_created.html", context)
        response["Cache-Control"] = "no-store"
        return response

    @admin.action(description="Revoke selected tokens")
    def revoke(self, request, queryset):
        for token in queryset:
            token_revoke(token=token)
        self.message_user(request, f"Revoked {queryset.count()} token(s).")
