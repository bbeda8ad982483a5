"""HTTP API for clients: thin views that validate, call a service and serialize."""
from __future__ import annotations

import time
from datetime import datetime

from django.conf import settings
from django.http import HttpResponse
from django.shortcuts import get_object_or_404
from django.urls import reverse
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.pagination import PageNumberPagination
from rest_framework.parsers import BaseParser
from rest_framework.permissions import AllowAny, BasePermission
from rest_framework.response import Response
from rest_framework.throttling import SimpleRateThrottle
from rest_framework.views import APIView

from csrproxy.parsers import SafeJSONParser
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


# Declared field by field rather than as a ModelSerializer, which rebuilds its fields from
# the model on every response (the bench measured that in the submission's CPU time).
class RequestOutput(serializers.Serializer):
    """A request. ``certificate``, ``not_before`` and ``not_after`` are set once it is valid,
    ``error`` (a problem document) once it is invalid; otherwise they are null."""

    id = serializers.IntegerField(read_only=True)
    status = serializers.ChoiceField(choices=CertificateRequest.Status.choices, read_only=True)
    names = serializers.ListField(child=serializers.CharField(), read_only=True)
    created_at = serializers.DateTimeField(read_only=True)
    expected_at = serializers.SerializerMethodField(
        help_text="While pending: when the request is expected to go on (e.g. held by the "
        "CA budget).")
    certificate = serializers.SerializerMethodField(help_text="PEM chain, leaf first")
    not_before = serializers.SerializerMethodField()
    not_after = serializers.SerializerMethodField()
    error = serializers.JSONField(allow_null=True, read_only=True)

    def get_expected_at(self, obj) -> datetime | None:
        return obj.next_attempt_at if obj.status == CertificateRequest.Status.PENDING else None

    def _cert(self, obj):
        return getattr(obj, "certificate", None) if obj.status == "valid" else None

    def get_certificate(self, obj) -> str | None:
        cert = self._cert(obj)
        return cert.chain_pem if cert else None

    def get_not_before(self, obj) -> datetime | None:
        cert = self._cert(obj)
        return cert.not_before if cert else None

    def get_not_after(self, obj) -> datetime | None:
        cert = self._cert(obj)
        return cert.not_after if cert else None


class ProblemOutput(serializers.Serializer):
    """RFC 9457 problem document: every error of the API has this shape."""

    type = serializers.CharField()
    title = serializers.CharField()
    status = serializers.IntegerField()
    detail = serializers.CharField()
    subproblems = serializers.ListField(child=serializers.DictField(), required=False)


def _problems(*codes: int) -> dict:
    return {(code, PROBLEM_CONTENT_TYPE): ProblemOutput for code in codes}


class RequestPage(serializers.Serializer):
    count = serializers.IntegerField()
    next = serializers.URLField(allow_null=True)
    previous = serializers.URLField(allow_null=True)
    results = RequestOutput(many=True)


class CsrInput(serializers.Serializer):
    csr = serializers.CharField(help_text="PEM-encoded PKCS#10 CSR", trim_whitespace=False)


def _client_ip(request) -> str | None:
    return request.META.get("REMOTE_ADDR")


class CertificateListCreateApi(APIView):
    permission_classes = [HasProductToken]
    parser_classes = [SafeJSONParser, PemCsrParser]

    @extend_schema(operation_id="certificates_list",
                   responses={200: RequestPage, **_problems(401, 403)})
    def get(self, request):
        principal = request.user
        qs = requests_visible_to(product=principal.product, tenant_id=principal.tenant.pk)
        paginator = PageNumberPagination()
        page = paginator.paginate_queryset(qs, request, view=self)
        return paginator.get_paginated_response(RequestOutput(page, many=True).data)

    @extend_schema(
        operation_id="certificates_create",
        request={"application/json": CsrInput, "application/pkcs10": str},
        parameters=[OpenApiParameter("Idempotency-Key", str, OpenApiParameter.HEADER)],
        responses={202: RequestOutput, 200: RequestOutput,
                   **_problems(400, 401, 403, 413, 415, 422)},
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

    @extend_schema(operation_id="certificates_retrieve",
                   responses={200: RequestOutput, **_problems(401, 404)})
    def get(self, request, pk: int):
        return Response(RequestOutput(self._get(request, pk)).data)


class CertificateChainApi(CertificateDetailApi):
    @extend_schema(operation_id="certificates_chain",
                   responses={(200, PEM_CHAIN_TYPE): str, **_problems(401, 404, 409)})
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
        operation_id="legacy_sign",
        request={"application/x-pem-file": str},
        responses={(200, PEM_CHAIN_TYPE): str,
                   **_problems(400, 401, 403, 413, 422, 429, 504)},
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
