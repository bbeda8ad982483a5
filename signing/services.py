"""Submitting CSRs and reading requests. The API calls these; they hand work to the tasks."""
from __future__ import annotations

import logging
from datetime import timedelta
from functools import partial

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import QuerySet
from django.utils import timezone

from csrproxy.problems import Problem
from tenants.models import ApiToken, Product

from .csr import ParsedCsr, csr_parse
from .models import CertificateRequest
from .quotas import quota_check
from .tasks import request_enqueue

log = logging.getLogger(__name__)


def request_submit(
    *,
    product: Product,
    csr_data: bytes | str,
    token: ApiToken | None = None,
    idempotency_key: str = "",
    client_ip: str | None = None,
) -> tuple[CertificateRequest, bool]:
    """Check a CSR against the policy and queue it. Returns (request, created).

    A retried submission with the same ``Idempotency-Key`` returns the first request.
    Nothing refused here reaches the CA or DNS.
    """
    parsed = csr_parse(
        csr_data, zone=product.zone, allow_wildcard=product.allow_wildcard,
        max_names=product.max_names,
    )
    if idempotency_key:
        existing = _idempotent_replay(product, idempotency_key, parsed.public_key_sha256)
        if existing is not None:
            return existing, False
    reusable = _reusable_request(product, parsed)
    if reusable is not None:
        return reusable, False
    now = timezone.now()
    try:
        with transaction.atomic():
            quota_check(product=product, names=parsed.names)
            req = CertificateRequest.objects.create(
                tenant_id=product.tenant_id, product=product, token=token,
                csr_pem=parsed.pem, names=parsed.names, key_type=parsed.key_type,
                public_key_sha256=parsed.public_key_sha256, idempotency_key=idempotency_key,
                client_ip=client_ip, created_at=now, next_attempt_at=now,
                deadline_at=now + timedelta(seconds=settings.SIGNING_DEADLINE_SECONDS),
            )
            # Only after commit: the worker must find the row.
            transaction.on_commit(partial(request_enqueue, req.pk))
    except IntegrityError:
        if not idempotency_key:
            raise  # not a lost race on the key (say, a token deleted a moment ago)
        existing = _idempotent_replay(product, idempotency_key, parsed.public_key_sha256)
        if existing is None:
            raise
        return existing, False
    log.info("request %s submitted for %s (product %s)", req.pk, parsed.names, product)
    return req, True


def _reusable_request(product: Product, parsed: ParsedCsr) -> CertificateRequest | None:
    """An issued request for the same key and names with enough lifetime left.

    Handing it back costs no order, no quota and none of the CA's rate limits. Nearly every
    submission has a new key, so the lookup reads three columns and loads a whole request
    only when there is one to hand back.

    The product is compared here, not in SQL: with it in the WHERE clause, statistics not
    yet refreshed after a burst of submissions made PostgreSQL walk the product's index and
    filter thousands of rows (the bench measured 1.9 ms instead of 0.04 ms per lookup).
    Only the key's index (``request_reuse``) can serve this query.
    """
    min_expiry = timezone.now() + timedelta(days=settings.CERTIFICATE_REUSE_MIN_DAYS)
    candidates = CertificateRequest.objects.filter(
        public_key_sha256=parsed.public_key_sha256,
        status=CertificateRequest.Status.VALID, certificate__not_after__gt=min_expiry,
    ).order_by("-created_at").values_list("pk", "product_id", "names")[:10]
    wanted = set(parsed.names)
    pk = next((pk for pk, product_id, names in candidates
               if product_id == product.pk and set(names) == wanted), None)
    if pk is None:
        return None
    return CertificateRequest.objects.select_related("certificate").get(pk=pk)


def _idempotent_replay(product: Product, key: str, public_key_sha256: str):
    existing = CertificateRequest.objects.filter(product=product, idempotency_key=key).first()
    if existing is not None and existing.public_key_sha256 != public_key_sha256:
        raise Problem("idempotency-key-reused", "Idempotency-Key reused",
                      "This Idempotency-Key was used for another CSR.", status=422)
    return existing


def requests_visible_to(*, product: Product | None, tenant_id: int) -> QuerySet[CertificateRequest]:
    """A product token sees its product's requests; a tenant token its tenant's."""
    qs = CertificateRequest.objects.select_related("certificate")
    return qs.filter(product=product) if product is not None else qs.filter(tenant_id=tenant_id)
