"""``GET /api/v1/usage/``: a tenant's usage for its own dashboards and billing.

Read with a tenant (reporting) token only: a product token sits in installations, which
have no business reading their publisher's figures. The figures are those of the admin's
usage pages (``signing.reports``).
"""
from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.permissions import BasePermission
from rest_framework.response import Response
from rest_framework.views import APIView

from csrproxy.problems import PROBLEM_CONTENT_TYPE, Problem

from .api import ProblemOutput
from .reports import DEFAULT_PERIOD_DAYS, REPORT_PERIODS_DAYS, tenant_usage


class HasTenantToken(BasePermission):
    message = "Usage is read with a tenant (reporting) token; this is a product token."

    def has_permission(self, request, view) -> bool:
        return request.auth is not None and request.auth.product_id is None


class DayOutput(serializers.Serializer):
    day = serializers.DateField()
    issued = serializers.IntegerField()
    failed = serializers.IntegerField()


class QuotaOutput(serializers.Serializer):
    """Use of a limit over its rolling window; ``limit`` and ``left`` are null: no limit."""

    limit = serializers.IntegerField(allow_null=True)
    used = serializers.IntegerField()
    left = serializers.IntegerField(allow_null=True)
    window_days = serializers.IntegerField()


class ProductUsageOutput(serializers.Serializer):
    slug = serializers.CharField(source="product.slug")
    name = serializers.CharField(source="product.name")
    zone = serializers.CharField(source="product.zone")
    issued = serializers.IntegerField()
    failed = serializers.IntegerField()
    certificates = QuotaOutput(help_text="Certificate quota: requests that did not fail.")
    hostnames = QuotaOutput(help_text="Distinct hostnames quota.")
    daily = DayOutput(many=True)


class UsageOutput(serializers.Serializer):
    """Certificates issued and requests failed in the period (the last ``days`` days, from
    midnight UTC), quota use over each rolling window, and both per day."""

    tenant = serializers.CharField(source="tenant.slug")
    days = serializers.IntegerField()
    since = serializers.DateTimeField()
    issued = serializers.IntegerField()
    failed = serializers.IntegerField()
    certificates = QuotaOutput(help_text="The tenant's cap over all its products.")
    products = ProductUsageOutput(many=True)
    daily = DayOutput(many=True)


def _period_days(raw: str | None) -> int:
    if raw is None:
        return DEFAULT_PERIOD_DAYS
    if raw not in {str(days) for days in REPORT_PERIODS_DAYS}:
        periods = " or ".join(str(days) for days in REPORT_PERIODS_DAYS)
        raise Problem("invalid-request", "Invalid request", f"days must be {periods}.",
                      subproblems=[{"field": "days", "detail": f"Must be {periods}."}])
    return int(raw)


class UsageApi(APIView):
    permission_classes = [HasTenantToken]

    @extend_schema(
        operation_id="usage_retrieve",
        parameters=[OpenApiParameter("days", int, enum=list(REPORT_PERIODS_DAYS),
                                     default=DEFAULT_PERIOD_DAYS,
                                     description="Length of the period, in days.")],
        responses={200: UsageOutput,
                   **{(code, PROBLEM_CONTENT_TYPE): ProblemOutput for code in (400, 401, 403)}},
    )
    def get(self, request):
        days = _period_days(request.query_params.get("days"))
        return Response(UsageOutput(tenant_usage(tenant=request.user.tenant, days=days)).data)
