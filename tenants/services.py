"""Writes on tenants, products and tokens, each with its audit event. DNS for products is
done by the callers through ``dns_provisioning.services`` (tenants imports nothing of the
other apps)."""
from __future__ import annotations

import getpass
from datetime import date, datetime
from decimal import Decimal
from functools import partial
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import models, transaction
from django.utils import timezone

from .models import ApiToken, AuditEvent, Product, Tenant
from .token_cache import token_forget
from .tokens import token_generate

# Who makes a change: an admin user, a text such as "operator command", or None (code that
# names nobody, e.g. a test fixture), recorded as "system".
Actor = AbstractBaseUser | str | None
OPERATOR_COMMAND = "operator command"

PRODUCT_AUDITED_FIELDS = (
    "tenant", "slug", "name", "zone", "allow_wildcard", "max_names", "quota_certificates",
    "quota_window_days", "quota_hostnames", "address_ipv4", "address_ipv6", "legacy_subject",
)
PRODUCT_QUOTA_FIELDS = frozenset({"quota_certificates", "quota_window_days", "quota_hostnames"})
TENANT_AUDITED_FIELDS = ("slug", "name", "max_certificates_per_window")
TENANT_QUOTA_FIELDS = frozenset({"max_certificates_per_window"})
TOKEN_AUDITED_FIELDS = ("product", "name", "expires_at")

Changes = dict[str, list[Any]]


# --- audit ---------------------------------------------------------------------------------

def audit_record(
    *,
    tenant: Tenant,
    action: AuditEvent.Action,
    actor: Actor,
    obj: models.Model,
    changes: Changes | None = None,
) -> AuditEvent:
    """Add one event to ``tenant``'s trail. Callers pass field values, never secrets."""
    user = actor if isinstance(actor, AbstractBaseUser) else None
    return AuditEvent.objects.create(
        tenant=tenant, user=user, actor=_actor_label(actor), action=action,
        object_type=obj._meta.model_name, object_id=obj.pk, object_repr=str(obj)[:200],
        changes=changes or {},
    )


def _actor_label(actor: Actor) -> str:
    if actor is None:
        return "system"
    if isinstance(actor, AbstractBaseUser):
        return actor.get_username()
    return actor[:150]


def _jsonable(value: Any) -> Any:
    """A field value as JSON: related objects by their text, times in ISO 8601."""
    if isinstance(value, models.Model):
        return str(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    return value


def field_snapshot(obj: models.Model, fields: tuple[str, ...]) -> dict[str, Any]:
    """The audited fields of ``obj`` as JSON values, to compare before and after a change."""
    return {name: _jsonable(getattr(obj, name)) for name in fields}


def _diff(before: dict[str, Any] | None, after: dict[str, Any]) -> Changes:
    before = before or {}
    return {name: [before.get(name), new] for name, new in after.items()
            if before.get(name) != new}


def _split(changes: Changes, quota_fields: frozenset[str]) -> tuple[Changes, Changes]:
    quota = {k: v for k, v in changes.items() if k in quota_fields}
    other = {k: v for k, v in changes.items() if k not in quota_fields}
    return other, quota


def command_actor() -> str:
    """The actor of a management command: the operator's system account, when known."""
    try:
        return f"{OPERATOR_COMMAND} ({getpass.getuser()})"
    except (KeyError, OSError):  # no passwd entry, e.g. in some containers
        return OPERATOR_COMMAND


# --- tenants -------------------------------------------------------------------------------

def tenant_create(*, slug: str, name: str, actor: Actor = None) -> Tenant:
    tenant = Tenant(slug=slug, name=name)
    tenant.full_clean()
    with transaction.atomic():
        tenant.save()
        tenant_audit_saved(tenant=tenant, before=None, actor=actor)
    return tenant


def tenant_audit_saved(*, tenant: Tenant, before: dict[str, Any] | None, actor: Actor) -> None:
    """Record a created or changed tenant; a changed cap is a quota change of its own, so the
    trail can be filtered for quota changes alone. ``before``: its ``field_snapshot``."""
    changes = _diff(before, field_snapshot(tenant, TENANT_AUDITED_FIELDS))
    if before is None:
        audit_record(tenant=tenant, action=AuditEvent.Action.TENANT_CREATED, actor=actor,
                     obj=tenant, changes=changes)
        return
    other, quota = _split(changes, TENANT_QUOTA_FIELDS)
    if other:
        audit_record(tenant=tenant, action=AuditEvent.Action.TENANT_CHANGED, actor=actor,
                     obj=tenant, changes=other)
    if quota:
        audit_record(tenant=tenant, action=AuditEvent.Action.QUOTA_CHANGED, actor=actor,
                     obj=tenant, changes=quota)


# --- products ------------------------------------------------------------------------------

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
    actor: Actor = None,
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
    with transaction.atomic():
        product.save()
        product_audit_saved(product=product, before=None, actor=actor)
    return product


def product_snapshot(product: Product) -> dict[str, Any] | None:
    """The stored state of a product (None if not saved yet), taken before a change."""
    if product.pk is None:
        return None
    stored = Product.objects.select_related("tenant").filter(pk=product.pk).first()
    return field_snapshot(stored, PRODUCT_AUDITED_FIELDS) if stored else None


def product_audit_saved(*, product: Product, before: dict[str, Any] | None, actor: Actor) -> None:
    """Record a created or changed product; quota fields go into a quota-changed event of
    their own. ``before``: :func:`product_snapshot` taken before the save."""
    changes = _diff(before, field_snapshot(product, PRODUCT_AUDITED_FIELDS))
    if before is None:
        audit_record(tenant=product.tenant, action=AuditEvent.Action.PRODUCT_CREATED,
                     actor=actor, obj=product, changes=changes)
        return
    other, quota = _split(changes, PRODUCT_QUOTA_FIELDS)
    if other:
        audit_record(tenant=product.tenant, action=AuditEvent.Action.PRODUCT_CHANGED,
                     actor=actor, obj=product, changes=other)
    if quota:
        audit_record(tenant=product.tenant, action=AuditEvent.Action.QUOTA_CHANGED,
                     actor=actor, obj=product, changes=quota)


def product_delete(*, product: Product, actor: Actor) -> None:
    """Delete a product (its tokens go with it) and record it; its DNS is the caller's."""
    with transaction.atomic():
        audit_record(tenant=product.tenant, action=AuditEvent.Action.PRODUCT_DELETED,
                     actor=actor, obj=product,
                     changes={"zone": [product.zone, None]})
        product.delete()


# --- tokens --------------------------------------------------------------------------------

def token_create(
    *,
    tenant: Tenant,
    product: Product | None,
    name: str = "",
    expires_at: datetime | None = None,
    actor: Actor = None,
) -> tuple[ApiToken, str]:
    """Create a token; returns it with its plaintext, which is never stored and shown once."""
    new = token_generate()
    created_by = actor if isinstance(actor, AbstractBaseUser) else None
    with transaction.atomic():
        token = ApiToken.objects.create(
            tenant=tenant, product=product, name=name, key_id=new.key_id, digest=new.digest,
            expires_at=expires_at, created_by=created_by,
        )
        audit_record(tenant=tenant, action=AuditEvent.Action.TOKEN_CREATED, actor=actor,
                     obj=token, changes=_diff(None, field_snapshot(token, TOKEN_AUDITED_FIELDS)))
    return token, new.plaintext


def token_audit_changed(*, token: ApiToken, before: dict[str, Any], actor: Actor) -> None:
    """Record an edited token (name, expiry). ``before``: its ``field_snapshot``."""
    changes = _diff(before, field_snapshot(token, TOKEN_AUDITED_FIELDS))
    if changes:
        audit_record(tenant=token.tenant, action=AuditEvent.Action.TOKEN_CHANGED, actor=actor,
                     obj=token, changes=changes)


def token_revoke(*, token: ApiToken, actor: Actor = None) -> bool:
    """Revoke a token; False (and no event) if it already was."""
    with transaction.atomic():
        now = timezone.now()
        # Conditional update: two admins revoking at once record one revocation, not two.
        if not ApiToken.objects.filter(pk=token.pk, revoked_at=None).update(revoked_at=now):
            return False
        token.revoked_at = now
        audit_record(tenant=token.tenant, action=AuditEvent.Action.TOKEN_REVOKED, actor=actor,
                     obj=token, changes={"revoked_at": [None, now.isoformat()]})
    # After the commit: a request in between would otherwise cache the old row again.
    transaction.on_commit(partial(token_forget, token.key_id))
    return True


def token_delete(*, token: ApiToken, actor: Actor) -> None:
    with transaction.atomic():
        audit_record(tenant=token.tenant, action=AuditEvent.Action.TOKEN_DELETED, actor=actor,
                     obj=token)
        token.delete()
    # After the commit: a request in between would otherwise cache the old row again.
    transaction.on_commit(partial(token_forget, token.key_id))
