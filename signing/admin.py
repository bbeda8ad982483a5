"""Admin for requests (with their audit trail), certificates, ACME accounts and the
tenants' usage reports."""
from __future__ import annotations

import csv
from dataclasses import dataclass

from django import forms
from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone

from tenants.admin import ProductListFilter, TenantListFilter
from tenants.admin_scoping import ReadOnlyAdmin, TenantScopedAdmin
from tenants.models import UsageReport

from .accounts import account_set_eab_hmac_key
from .models import (
    AcmeAccount,
    CaBudget,
    Certificate,
    CertificateRequest,
    ProductAcmeAccount,
    RequestEvent,
)
from .reports import (
    DEFAULT_PERIOD_DAYS,
    REPORT_PERIODS_DAYS,
    DayCount,
    TenantUsage,
    daily_sum,
    tenant_usage,
    usage_daily_rows,
    usage_report,
)


class RequestEventInline(admin.TabularInline):
    model = RequestEvent
    extra = 0
    can_delete = False
    fields = ["at", "status", "step", "message"]
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
class CertificateRequestAdmin(ReadOnlyAdmin):
    """Read-only: requests change only through the flow; the admin shows their history."""

    staff_can_add = staff_can_delete = False
    list_display = ["id", "product", "names", "status", "step", "created_at", "finished_at"]
    list_filter = ["status", "step", TenantListFilter, ProductListFilter]
    search_fields = ["id", "names", "public_key_sha256"]
    date_hierarchy = "created_at"
    inlines = [CertificateInline, RequestEventInline]
    exclude = ["authorizations"]
    list_select_related = ["product__tenant"]


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


class RequestTenantFilter(TenantListFilter):
    tenant_path = "request__tenant"


class RequestProductFilter(ProductListFilter):
    product_path = "request__product"


@admin.register(RequestEvent)
class RequestEventAdmin(ReadOnlyAdmin):
    """Every request's events in one list, newest first: "what failed this morning?"."""

    tenant_path = "request__tenant"
    list_display = ["at", "request", "status", "step", "message"]
    list_filter = ["status", "step", RequestTenantFilter, RequestProductFilter]
    search_fields = ["message"]
    date_hierarchy = "at"
    ordering = ["-at", "-id"]
    list_select_related = ["request"]
    show_full_result_count = False  # one count less on a table that only grows
    fields = ["at", "request", "status", "step", "message"]
    readonly_fields = fields


# --- usage reports --------------------------------------------------------------------------

@dataclass(frozen=True)


class ChartBar:
    day_count: DayCount
    x: float
    width: float
    issued_y: float
    issued_height: float
    failed_y: float
    failed_height: float


@dataclass(frozen=True)
class ChartLabel:
    x: float
    y: float
    text: str


@dataclass(frozen=True)
class IssuanceChart:
    """Geometry of the stacked bar chart (issued, failed per day), drawn as inline SVG by the
    template: no JavaScript and nothing from a CDN, so it renders offline and in any browser.
    """

    width: int
    height: int
    plot_left: int
    plot_right: int
    bars: list[ChartBar]
    y_labels: list[ChartLabel]
    x_labels: list[ChartLabel]


CHART_WIDTH, CHART_HEIGHT = 760, 220
CHART_LEFT, CHART_RIGHT, CHART_TOP, CHART_BOTTOM = 44, 8, 10, 26


def _nice_ceiling(value: int) -> int:
    """The smallest 1, 2 or 5 times a power of ten that is at least ``value``."""
    nice = 1
    while nice < value:
        for factor in (2, 5 / 2, 2):  # 1 -> 2 -> 5 -> 10
            nice = round(nice * factor)
            if nice >= value:
                break
    return nice


def issuance_chart(daily: list[DayCount]) -> IssuanceChart:
    plot_width = CHART_WIDTH - CHART_LEFT - CHART_RIGHT
    plot_height = CHART_HEIGHT - CHART_TOP - CHART_BOTTOM
    baseline = CHART_TOP + plot_height
    top = _nice_ceiling(max([d.issued + d.failed for d in daily] + [1]))
    step = plot_width / max(len(daily), 1)
    gap = min(step * 0.15, 2)
    bars = []
    for index, day in enumerate(daily):
        issued_height = plot_height * day.issued / top
        failed_height = plot_height * day.failed / top
        bars.append(ChartBar(
            day_count=day, x=round(CHART_LEFT + index * step + gap, 2),
            width=round(max(step - 2 * gap, 1), 2),
            issued_y=round(baseline - issued_height, 2), issued_height=round(issued_height, 2),
            failed_y=round(baseline - issued_height - failed_height, 2),
            failed_height=round(failed_height, 2),
        ))
    y_labels = [ChartLabel(CHART_LEFT - 6, round(baseline - plot_height * v / top, 2), str(v))
                for v in sorted({0, top // 2, top})]
    every = 7 if len(daily) <= 31 else 14
    x_labels = [ChartLabel(round(CHART_LEFT + (i + 0.5) * step, 2), CHART_HEIGHT - 8,
                           day.day.strftime("%b %d"))
                for i, day in enumerate(daily) if (len(daily) - 1 - i) % every == 0]
    return IssuanceChart(CHART_WIDTH, CHART_HEIGHT, CHART_LEFT, CHART_WIDTH - CHART_RIGHT,
                         bars, y_labels, x_labels)


def _period_days(request: HttpRequest) -> int:
    """``?days=`` if it is one of the offered periods, else the default (a page, not an API:
    an odd value shows the default rather than an error)."""
    try:
        days = int(request.GET.get("days", DEFAULT_PERIOD_DAYS))
    except ValueError:
        return DEFAULT_PERIOD_DAYS
    return days if days in REPORT_PERIODS_DAYS else DEFAULT_PERIOD_DAYS


@admin.register(UsageReport)
class UsageReportAdmin(ReadOnlyAdmin):
    """Usage pages: an overview of the tenants the user may see, one page per tenant and its
    CSV export. Publisher staff reach only their own tenants: another tenant's page is a 404
    exactly like a tenant that does not exist, and a user without a tenant gets a 403."""

    tenant_path = "pk"

    def get_urls(self):
        prefix = f"{self.opts.app_label}_{self.opts.model_name}"
        view = self.admin_site.admin_view
        return [
            path("", view(self.overview_view), name=f"{prefix}_changelist"),
            path("<int:tenant_id>/", view(self.tenant_view), name=f"{prefix}_tenant"),
            path("<int:tenant_id>/csv/", view(self.csv_view), name=f"{prefix}_csv"),
        ]

    def _visible_tenants(self, request: HttpRequest):
        if not self.has_view_permission(request):
            raise PermissionDenied
        return self.get_queryset(request)

    def _tenant_usage(self, request: HttpRequest, tenant_id: int) -> TenantUsage:
        tenant = get_object_or_404(self._visible_tenants(request), pk=tenant_id)
        return tenant_usage(tenant=tenant, days=_period_days(request))

    def _context(self, request: HttpRequest, title: str, **extra) -> dict:
        days = extra["days"]
        return {**self.admin_site.each_context(request), "opts": self.opts, "title": title,
                "periods": REPORT_PERIODS_DAYS,
                "chart_title": f"Certificates issued and failed per day, last {days} days",
                **extra}

    def overview_view(self, request: HttpRequest):
        tenants = list(self._visible_tenants(request))
        days = _period_days(request)
        if len(tenants) == 1 and not request.user.is_superuser:
            url = reverse("admin:tenants_usagereport_tenant", args=[tenants[0].pk])
            return redirect(f"{url}?days={days}")
        report = usage_report(tenants=tenants, days=days)
        day_list = [d.day for d in report[0].daily] if report else []
        chart = issuance_chart(daily_sum([u.daily for u in report], day_list)) if report else None
        context = self._context(request, "Usage", report=report, days=days, chart=chart)
        return TemplateResponse(request, "admin/reports/usage_overview.html", context)

    def tenant_view(self, request: HttpRequest, tenant_id: int):
        usage = self._tenant_usage(request, tenant_id)
        products = {str(u.product.pk): u for u in usage.products}
        selected = products.get(request.GET.get("product", ""))
        chart = issuance_chart(selected.daily if selected else usage.daily)
        context = self._context(request, f"Usage of {usage.tenant.name}", usage=usage,
                                days=usage.days, selected=selected, chart=chart)
        return TemplateResponse(request, "admin/reports/usage_tenant.html", context)

    def csv_view(self, request: HttpRequest, tenant_id: int):
        usage = self._tenant_usage(request, tenant_id)
        response = HttpResponse(content_type="text/csv; charset=utf-8")
        filename = f"usage-{usage.tenant.slug}-{usage.days}d-{timezone.now():%Y%m%d}.csv"
        response["Content-Disposition"] = f'attachment; filename="{filename}"'
        writer = csv.writer(response)
        writer.writerow(["date", "tenant", "product", "issued", "failed"])
        for day, product, issued, failed in usage_daily_rows(usage):
            writer.writerow([day.isoformat(), usage.tenant.slug, product, issued, failed])
        return response


@admin.register(CaBudget)
class CaBudgetAdmin(admin.ModelAdmin):
    """Operator only: the rate-limit budget of a CA account, shared by every tenant."""

    list_display = ["account", "registered_domain", "certificates_per_domain_per_week",
                    "certificates_per_name_set_per_week", "orders_per_three_hours",
                    "when_exceeded"]
    list_filter = ["account", "when_exceeded"]
