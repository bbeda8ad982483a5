"""Publishers (tenants), their staff, their products and the API tokens clients hold."""
from __future__ import annotations

from django.conf import settings
from django.core.validators import MinValueValidator, RegexValidator
from django.db import models
from django.utils import timezone

fqdn_validator = RegexValidator(
    r"^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)*[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$",
    "Enter a lower-case DNS name without trailing dot, e.g. app.example.com.",
)


class Tenant(models.Model):
    """A software publisher. Its staff manage only its own products in the admin."""

    slug = models.SlugField(max_length=40, unique=True)
    name = models.CharField(max_length=200)
    max_certificates_per_window = models.PositiveIntegerField(
        null=True, blank=True, help_text="Cap over all the tenant's products (empty: none)."
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["slug"]

    def __str__(self) -> str:
        return self.slug


class Membership(models.Model):
    """Makes a Django staff user a member of a publisher's staff."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships"
    )
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="memberships")

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["user", "tenant"],
                name="membership_unique_user_tenant",
                violation_error_message="This user is already a member of this tenant.",
            )
        ]

    def __str__(self) -> str:
        return f"{self.user} @ {self.tenant}"


class Product(models.Model):
    """A publisher's product: the DNS subtree its installations get names in, and its policy."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="products")
    slug = models.SlugField(max_length=40)
    name = models.CharField(max_length=200, blank=True)
    zone = models.CharField(
        max_length=253,
        unique=True,
        validators=[fqdn_validator],
        help_text="DNS subtree of the installations' names (default: product.tenant.base zone).",
    )
    # Issuance policy
    allow_wildcard = models.BooleanField(default=False)
    max_names = models.PositiveIntegerField(
        default=10, validators=[MinValueValidator(1)], help_text="Names per CSR, at most 100."
    )
    # Quotas (empty: no limit)
    quota_certificates = models.PositiveIntegerField(null=True, blank=True)
    quota_window_days = models.PositiveIntegerField(default=7, validators=[MinValueValidator(1)])
    quota_hostnames = models.PositiveIntegerField(null=True, blank=True)
    # Where an installation's name points: itself, by default.
    address_ipv4 = models.GenericIPAddressField(protocol="IPv4", null=True, blank=True,
                                                default="127.0.0.1")
    address_ipv6 = models.GenericIPAddressField(protocol="IPv6", null=True, blank=True,
                                                default="::1")
    legacy_subject = models.CharField(
        max_length=200,
        blank=True,
        help_text='Exact subject (e.g. "CN=go.example.com") that POST /v1/sign accepts '
        "without a token. At most one product may have one.",
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["tenant__slug", "slug"]
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "slug"],
                name="product_unique_tenant_slug",
                violation_error_message="This tenant already has a product with this slug.",
            ),
            models.UniqueConstraint(
                fields=["legacy_subject"],
                condition=~models.Q(legacy_subject=""),
                name="product_unique_legacy_subject",
                violation_error_message="Another product is already the legacy product.",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.tenant.slug}/{self.slug}"


class ApiToken(models.Model):
    """A bearer token. Only its public key id and an HMAC digest are stored, never the token.

    Product tokens let installations submit CSRs; tenant tokens (no product) read reports.
    """

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="tokens")
    product = models.ForeignKey(
        Product, null=True, blank=True, on_delete=models.CASCADE, related_name="tokens"
    )
    name = models.CharField(max_length=100, blank=True)
    key_id = models.CharField(max_length=16, unique=True, editable=False)
    digest = models.CharField(max_length=64, editable=False)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
        related_name="+", editable=False,
    )
    expires_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.name or 'token'} ({self.key_id}…)"

    def is_usable(self, now=None) -> bool:
        now = now or timezone.now()
        return self.revoked_at is None and (self.expires_at is None or self.expires_at > now)


class AuditEvent(models.Model):
    """Who changed what in a tenant's configuration, and when: tokens, products, quotas.

    Requests have a trail of their own (``signing.RequestEvent``). Rows are only ever added.
    The object is kept as an id and a text so the event outlives a deleted product or token;
    a token appears only by its public key id, never with its plaintext.
    """

    class Action(models.TextChoices):
        TENANT_CREATED = "tenant-created", "tenant created"
        TENANT_CHANGED = "tenant-changed", "tenant changed"
        PRODUCT_CREATED = "product-created", "product created"
        PRODUCT_CHANGED = "product-changed", "product changed"
        PRODUCT_DELETED = "product-deleted", "product deleted"
        QUOTA_CHANGED = "quota-changed", "quota changed"
        TOKEN_CREATED = "token-created", "token created"
        TOKEN_CHANGED = "token-changed", "token changed"
        TOKEN_REVOKED = "token-revoked", "token revoked"
        TOKEN_DELETED = "token-deleted", "token deleted"

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="audit_events")
    at = models.DateTimeField(default=timezone.now)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
        related_name="+", help_text="The admin user who made the change, if one did.",
    )
    actor = models.CharField(
        max_length=150, help_text='Who made the change: a username, or e.g. "operator command".'
    )
    action = models.CharField(max_length=20, choices=Action.choices)
    object_type = models.CharField(max_length=20)
    object_id = models.BigIntegerField(null=True, blank=True)
    object_repr = models.CharField("object", max_length=200)
    changes = models.JSONField(
        default=dict, blank=True, help_text="Changed fields: {field: [old, new]}."
    )

    class Meta:
        ordering = ["-at", "-id"]
        indexes = [models.Index(fields=["tenant", "-at"], name="audit_by_tenant")]

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M:%S} {self.action} {self.object_repr} by {self.actor}"


class UsageReport(Tenant):
    """A tenant seen as its usage report: gives the admin index a "Usage reports" entry.

    No table of its own; the figures are computed by ``signing.reports`` (the admin page is
    registered in ``signing.admin``, since tenants imports nothing of the other apps).
    """

    class Meta:
        proxy = True
        verbose_name = "usage report"
