"""Tenant scoping for the admin: publisher staff see and edit only their own tenant's rows.

Superusers see everything. A staff user's tenants come from their memberships; every
queryset, foreign-key choice and object permission goes through ``tenant_path``.
"""
from __future__ import annotations

from django.contrib import admin
from django.db.models import QuerySet

from .models import Product, Tenant


def user_tenant_ids(user) -> list[int]:
    cached = getattr(user, "_csrproxy_tenant_ids", None)
    if cached is None:
        cached = list(user.memberships.values_list("tenant_id", flat=True))
        user._csrproxy_tenant_ids = cached
    return cached


class TenantScopedAdmin(admin.ModelAdmin):
    """Base ModelAdmin for models that belong to a tenant through ``tenant_path``."""

    tenant_path = "tenant"
    staff_can_add = True
    staff_can_delete = True

    def _is_publisher_staff(self, request) -> bool:
        user = request.user
        return user.is_active and user.is_staff and bool(user_tenant_ids(user))

    def get_queryset(self, request) -> QuerySet:
        qs = super().get_queryset(request)
        if request.user.is_superuser:
            return qs
        return qs.filter(**{f"{self.tenant_path}__in": user_tenant_ids(request.user)})

    def _owns(self, request, obj) -> bool:
        return obj is None or self.get_queryset(request).filter(pk=obj.pk).exists()

    def has_module_permission(self, request) -> bool:
        return request.user.is_superuser or self._is_publisher_staff(request)

    def has_view_permission(self, request, obj=None) -> bool:
        if request.user.is_superuser:
            return True
        return self._is_publisher_staff(request) and self._owns(request, obj)

    def has_change_permission(self, request, obj=None) -> bool:
        return self.has_view_permission(request, obj)

    def has_add_permission(self, request) -> bool:
        if request.user.is_superuser:
            return True
        return self.staff_can_add and self._is_publisher_staff(request)

    def has_delete_permission(self, request, obj=None) -> bool:
        if request.user.is_superuser:
            return True
        return self.staff_can_delete and self.has_view_permission(request, obj)

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if not request.user.is_superuser:
            ids = user_tenant_ids(request.user)
            if db_field.related_model is Tenant:
                kwargs["queryset"] = Tenant.objects.filter(pk__in=ids)
            elif db_field.related_model is Product:
                kwargs["queryset"] = Product.objects.filter(tenant__in=ids)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)


class ReadOnlyAdmin(TenantScopedAdmin):
    """A tenant-scoped record nobody edits in the admin (history, audit): view only."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
