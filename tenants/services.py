"""Writes on tenants, products and tokens. DNS for products is done by the callers through
``dns_provisioning.services`` (tenants imports nothing of the other apps)."""
from __future__ import annotations

from datetime import datetime

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.utils import timezone

from .models import ApiToken, Product, Tenant
from .tokens import token_generate


def tenant_create(*, slug: str, name: str) -> Tenant:
    tenant = Tenant(slug=slug, name=name)
    tenant.full_clean()
    tenant.save()
    return tenant


def product_default_zone(*, tenant: Tenant, slug: str) -> str:
    return f"{slug}.{tenant.slug}.{settings.CSRPROXY_BASE_ZONE}".lower()


def product_create(
    *,
    tenant: Tenant,
    slug: str,
    zone: str = "",
    allow_wildcard: bool = False,
    legacy_subject: str = "",
    name: str = "",
) -> Product:
    product = Product(
        tenant=tenant,
        slug=slug,
        name=name or slug,
        zone=(zone.rstrip(".").lower() or product_default_zone(tenant=tenant, slug=slug)),
        allow_wildcard=allow_wildcard,
        legacy_subject=legacy_subject,
    )
    product.full_clean()
    product.save()
    return product


def token_create(
    *,
    tenant: Tenant,
    product: Product | None,
    name: str = "",
    expires_at: datetime | None = None,
    created_by: AbstractBaseUser | None = None,
) -> tuple[ApiToken, str]:
    """Create a token; returns it with its plaintext, which is never stored and shown once."""
    new = token_generate()
    token = ApiToken.objects.create(
        tenant=tenant, product=product, name=name, key_id=new.key_id, digest=new.digest,
        expires_at=expires_at, created_by=created_by,
    )
    return token, new.plaintext


def token_revoke(*, token: ApiToken) -> None:
    if token.revoked_at is None:
        token.revoked_at = timezone.now()
        token.save(update_fields=["revoked_at"])
