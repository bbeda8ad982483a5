"""HTTP API for clients: thin views that validate, call a service and serialize."""
from __future__ import annotations

import time

from django.conf import settings
from django.http import HttpResponse
from django.shortcuts import get_object_or_404
from django.urls import reverse
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.pagination import PageNumberPagination
from rest_framework.parsers import BaseParser, JSONParser
from rest_framework.permissions import AllowAny, BasePermission
from rest_framework.response import Response
from rest_framework.throttling import SimpleRateThrottle
from rest_framework.views import APIView

from csrproxy.problems import PROBLEM_CONTENT_TYPE, Problem
from tenants.models import Product

from .csr import csr_subject
from .models import CertificateRequest
from .services import request_submit, requests_visible_to

PEM_CHAIN_TYPE = "application/pem-certificate-chain"


class PemCsrParser(BaseParser):
    """``Content-Type: application/pkcs10`` with a raw PEM CSR as the body."""

    media_type = "application/pkcs10"

    def parse(self, stream, media_type=None, parser_context=None):
        return {"csr": stream.read().decode("ascii", errors="replace")}


class HasProductToken(BasePermission):
    """Submitting needs a product (client) token; tenant (reporting) tokens only read."""

    def has_permission(self, request, view):
        return request.auth is not None and (
            request.method in ("GET", "HEAD", "OPTIONS") or request.auth.product_id is not None
        )


class RequestOutput(serializers.ModelSerializer):
    certificate = serializers.SerializerMethodField()
    not_before = serializers.SerializerMethodField()
    not_after = serializers.SerializerMethodField()

    class Meta:
        model = CertificateRequest
        fields = ["id", "status", "names", "created_at", "certificate", "not_before", "not_after",
                  "error"]

    def to_representation(self, instance):
        data = super().to_representation(instance)
        if instance.status != CertificateRequest.Status.VALID:
            for key in ("certificate", "not_before", "not_after"):
                data.pop(key)
        if instance.status != CertificateRequest.Status.INVALID:
            data.pop("error")
        return data

    def _cert(self, obj):
        return getattr(obj, "certificate", None) if obj.status == "valid" else None

    def get_certificate(self, obj) -> str | None:
        cert = self._cert(obj)
        return cert.chain_pem if cert else None

    def get_not_before(self, obj) -> str | None:
        cert = self._cert(obj)
        return cert.not_before.isoformat() if cert else None

    def get_not_after(self, obj) -> str | None:
        cert = self._cert(obj)
        return cert.not_after.isoformat() if cert else None


class CsrInput(serializers.Serializer):
    csr = serializers.CharField(help_text="PEM-encoded PKCS#10 CSR", trim_whitespace=False)


def _client_ip(request) -> str | None:
    return request.META.get("REMOTE_ADDR")


class CertificateListCreateApi(APIView):
    permission_classes = [HasProductToken]
    parser_classes = [JSONParser, PemCsrParser]

    @extend_schema(responses=RequestOutput(many=True))
    def get(self, request):
        principal = request.user
        qs = requests_visible_to(product=principal.product, tenant_id=principal.tenant.pk)
        paginator = PageNumberPagination()
        page = paginator.paginate_queryset(qs, request, view=self)
        return paginator.get_paginated_response(RequestOutput(page, many=True).data)

    @extend_schema(
        request={"application/json": CsrInput, "application/pkcs10": str},
        parameters=[OpenApiParameter("Idempotency-Key", str, OpenApiParameter.HEADER)],
        responses={202: RequestOutput},
    )
    def post(self, request):
        body = CsrInput(data=request.data)
        body.is_valid(raise_exception=True)
        req, created = request_submit(
            product=request.user.product, token=request.auth,
            csr_data=body.validated_data["csr"],
            idempotency_key=request.headers.get("Idempotency-Key", "")[:200],
            client_ip=_client_ip(request),
        )
        location = reverse("certificate-detail", args=[req.pk])
        return Response(RequestOutput(req).data,
                        status=status.HTTP_202_ACCEPTED if created else status.HTTP_200_OK,
                        headers={"Location": location})


class CertificateDetailApi(APIView):
    permission_classes = [HasProductToken]

    def _get(self, request, pk: int) -> CertificateRequest:
        principal = request.user
        return get_object_or_404(
            requests_visible_to(product=principal.product, tenant_id=principal.tenant.pk), pk=pk
        )

    @extend_schema(responses=RequestOutput)
    def get(self, request, pk: int):
        return Response(RequestOutput(self._get(request, pk)).data)


class CertificateChainApi(CertificateDetailApi):
    @extend_schema(responses={(200, PEM_CHAIN_TYPE): str})
    def get(self, request, pk: int):
        req = self._get(request, pk)
        if req.status != CertificateRequest.Status.VALID:
            raise Problem("certificate-not-ready", "No certificate yet",
                          f"The request is {req.status}.", status=409)
        return HttpResponse(req.certificate.chain_pem, content_type=PEM_CHAIN_TYPE)


class LegacyClientThrottle(SimpleRateThrottle):
    """Per-IP throttle for the public, token-less legacy endpoint."""

    scope = "legacy_sign"

    def get_cache_key(self, request, view):
        if request.auth is not None:
            return None
        return self.cache_format % {"scope": self.scope, "ident": self.get_ident(request)}


class LegacySignApi(APIView):
    """``POST /v1/sign``: the original service's interface. Raw PEM in, PEM chain out."""

    permission_classes = [AllowAny]
    throttle_classes = [LegacyClientThrottle]
    parser_classes = []

    @extend_schema(
        request={"application/x-pem-file": str},
        responses={(200, PEM_CHAIN_TYPE): str,
                   400: inline_serializer("Problem", {"type": serializers.CharField()})},
    )
    def post(self, request):
        if request.auth is not None:
            product = request.auth.product
            if product is None:
                raise Problem("forbidden", "Forbidden", "A product token is needed to sign.",
                              status=403)
        else:
            product = Product.objects.exclude(legacy_subject="").first()
            if product is None:
                raise Problem("unauthorized", "Authentication required",
                              "Missing or invalid bearer token.", status=401)
        csr_data = request.body
        if request.auth is None:
            _legacy_subject_check(product, csr_data)
        req, _ = request_submit(product=product, token=request.auth, csr_data=csr_data,
                                client_ip=_client_ip(request))
        return _wait_for_chain(req)


def _legacy_subject_check(product: Product, csr_data: bytes) -> None:
    if csr_subject(csr_data) != product.legacy_subject:
        raise Problem("invalid-subject", "Invalid subject",
                      f"This endpoint signs only {product.legacy_subject}.")


def _wait_for_chain(req: CertificateRequest):
    deadline = time.monotonic() + settings.LEGACY_SIGN_WAIT_SECONDS
    delay = 0.05
    while time.monotonic() < deadline:
        req.refresh_from_db(fields=["status", "error"])
        if req.status == CertificateRequest.Status.VALID:
            return HttpResponse(req.certificate.chain_pem, content_type=PEM_CHAIN_TYPE)
        if req.status == CertificateRequest.Status.INVALID:
            body = Problem("issuance-failed", "Issuance failed",
                           (req.error or {}).get("detail", "The CA refused the request."),
                           status=422).as_dict()
            body |= {"request": req.pk, "error": req.error}
            return Response(body, status=422, content_type=PROBLEM_CONTENT_TYPE)
        time.sleep(delay)
        delay = min(delay * 1.5, 1.0)
    body = Problem("issuance-pending", "Still being issued",
                   "Not issued in time; poll the Location URL with a token.",
                   status=504).as_dict() | {"request": req.pk}
    return Response(body, status=504, content_type=PROBLEM_CONTENT_TYPE,
                    headers={"Location": reverse("certificate-detail", args=[req.pk])})
