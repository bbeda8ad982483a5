"""ACME accounts, certificate requests with their resumable ACME state, certificates, events."""
from __future__ import annotations

from django.db import models
from django.utils import timezone

from tenants.models import ApiToken, Product, Tenant


class AcmeAccount(models.Model):
    """An account at one ACME directory. Its private key and EAB key are encrypted at rest."""

    name = models.CharField(max_length=100, unique=True)
    directory_url = models.URLField(max_length=500)
    contact_email = models.EmailField(blank=True)
    eab_kid = models.CharField("EAB key id", max_length=200, blank=True)
    eab_hmac_key_encrypted = models.TextField(blank=True, editable=False)
    tls_ca_file = models.CharField(
        "trusted TLS CA file", max_length=500, blank=True,
        help_text="PEM bundle that signs the directory's TLS certificate (empty: system trust).",
    )
    profile = models.CharField("ACME profile", max_length=50, blank=True)
    is_default = models.BooleanField(default=False)
    key_encrypted = models.TextField(blank=True, editable=False)
    account_url = models.URLField(max_length=500, blank=True, editable=False)
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["is_default"], condition=models.Q(is_default=True),
                name="acme_account_one_default",
                violation_error_message="Only one ACME account can be the default.",
            )
        ]

    def __str__(self) -> str:
        return self.name


class CaBudget(models.Model):
    """The operator's guard on a CA's rate limits, for one account and registered domain.

    Modelled on Let's Encrypt's limits: a request that would exceed one waits (or is
    refused) here instead of being sent to fail at the CA. Empty: no guard for that limit.
    """

    class WhenExceeded(models.TextChoices):
        WAIT = "wait", "wait until the window allows it"
        REFUSE = "refuse", "refuse the request"

    account = models.ForeignKey(AcmeAccount, on_delete=models.CASCADE, related_name="budgets")
    registered_domain = models.CharField(
        max_length=253, help_text="e.g. example.com: every name at or below it counts.")
    certificates_per_domain_per_week = models.PositiveIntegerField(null=True, blank=True,
                                                                   default=50)
    certificates_per_name_set_per_week = models.PositiveIntegerField(null=True, blank=True,
                                                                     default=5)
    orders_per_three_hours = models.PositiveIntegerField(null=True, blank=True, default=300)
    when_exceeded = models.CharField(max_length=6, choices=WhenExceeded.choices,
                                     default=WhenExceeded.WAIT)

    class Meta:
        verbose_name = "CA budget"
        constraints = [
            models.UniqueConstraint(
                fields=["account", "registered_domain"], name="ca_budget_unique_domain",
                violation_error_message="This account already has a budget for this domain.",
            )
        ]

    def __str__(self) -> str:
        return f"{self.account} / {self.registered_domain}"


class ProductAcmeAccount(models.Model):
    """Binds a product to an ACME account other than the default.

    Moving a product changes only new requests: a request keeps the account it started with.
    """

    product = models.OneToOneField(Product, on_delete=models.CASCADE, related_name="acme_binding")
    account = models.ForeignKey(AcmeAccount, on_delete=models.PROTECT, related_name="bindings")

    class Meta:
        verbose_name = "product bound to this account"

    def __str__(self) -> str:
        return f"{self.product} → {self.account}"


class CertificateRequest(models.Model):
    """One submitted CSR and everything needed to resume its ACME flow from the database."""

    class Status(models.TextChoices):
        PENDING = "pending"
        PROCESSING = "processing"
        VALID = "valid"
        INVALID = "invalid"

    class Step(models.TextChoices):
        ORDER = "order"
        PUBLISH = "publish"
        VERIFY = "verify"
        ANSWER = "answer"
        VALIDATE = "validate"
        FINALIZE = "finalize"
        DOWNLOAD = "download"
        CLEANUP = "cleanup"
        DONE = "done"

    FINISHED = (Status.VALID, Status.INVALID)

    tenant = models.ForeignKey(Tenant, on_delete=models.PROTECT, related_name="requests")
    product = models.ForeignKey(Product, on_delete=models.PROTECT, related_name="requests")
    token = models.ForeignKey(
        ApiToken, null=True, blank=True, on_delete=models.SET_NULL, related_name="requests"
    )
    csr_pem = models.TextField("CSR")
    names = models.JSONField(help_text="Normalized DNS names, in CSR order.")
    key_type = models.CharField(max_length=20)
    public_key_sha256 = models.CharField(max_length=64)
    idempotency_key = models.CharField(max_length=200, blank=True)
    client_ip = models.GenericIPAddressField(null=True, blank=True)

    status = models.CharField(max_length=12, choices=Status.choices, default=Status.PENDING)
    step = models.CharField(max_length=12, choices=Step.choices, default=Step.ORDER)
    error = models.JSONField(null=True, blank=True, help_text="Problem document (RFC 9457).")

    # ACME state: only URLs and values, so any worker can resume any step.
    acme_account = models.ForeignKey(
        AcmeAccount, null=True, blank=True, on_delete=models.PROTECT, related_name="requests"
    )
    order_url = models.URLField(max_length=500, blank=True)
    finalize_url = models.URLField(max_length=500, blank=True)
    certificate_url = models.URLField(max_length=500, blank=True)
    # When the CA budget admitted this request's order (what the budget's windows count).
    order_started_at = models.DateTimeField(null=True, blank=True)
    authorizations = models.JSONField(default=list, blank=True)

    # Scheduling: waits live here, not in the broker.
    attempts = models.PositiveIntegerField(default=0, help_text="Failed attempts in a row.")
    polls = models.PositiveIntegerField(default=0, help_text="Polls in the current step.")
    next_attempt_at = models.DateTimeField(default=timezone.now)
    lease_until = models.DateTimeField(null=True, blank=True)
    deadline_at = models.DateTimeField()

    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["product", "-created_at"], name="request_by_product"),
            models.Index(fields=["tenant", "-created_at"], name="request_by_tenant"),
            models.Index(fields=["next_attempt_at"], name="request_due",
                         condition=~models.Q(step="done")),
            models.Index(fields=["acme_account", "order_started_at"], name="request_ca_budget",
                         condition=models.Q(order_started_at__isnull=False)),
            # Usage reports (signing.reports): issued and failed per product and day, read
            # from the index alone.
            models.Index(fields=["tenant", "status", "finished_at"], include=["product"],
                         name="request_outcomes"),
            # Quota use (what holds a slot: not invalid) per rolling window, with the names
            # for the distinct-hostnames quota, read from the index alone.
            models.Index(fields=["tenant", "created_at"], include=["product", "names"],
                         condition=~models.Q(status="invalid"), name="request_quota_window"),
            # Reuse of an issued certificate at submission: issued requests by key.
            models.Index(fields=["public_key_sha256", "product"], include=["names"],
                         condition=models.Q(status="valid"), name="request_reuse"),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["product", "idempotency_key"], condition=~models.Q(idempotency_key=""),
                name="request_unique_idempotency_key",
            )
        ]

    def __str__(self) -> str:
        return f"request {self.pk} ({', '.join(self.names)})"

    @property
    def owner_ref(self) -> str:
        """Owner tag of this request's challenge TXT values."""
        return f"request:{self.pk}"


class Certificate(models.Model):
    """The issued chain, delivered only after its key and names were checked against the CSR."""

    request = models.OneToOneField(
        CertificateRequest, on_delete=models.PROTECT, related_name="certificate"
    )
    chain_pem = models.TextField()
    serial = models.CharField(max_length=64)
    subject = models.CharField(max_length=500)
    issuer = models.CharField(max_length=500)
    not_before = models.DateTimeField()
    not_after = models.DateTimeField()
    created_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"certificate {self.serial}"


class RequestEvent(models.Model):
    """Audit trail of a request: every status or step change, with time and cause.

    The submission itself (when, by which token, from where) is the request row; its first
    line here is the worker picking it up."""

    request = models.ForeignKey(
        CertificateRequest, on_delete=models.CASCADE, related_name="events"
    )
    at = models.DateTimeField(default=timezone.now)
    status = models.CharField(max_length=12)
    step = models.CharField(max_length=12)
    message = models.TextField()

    class Meta:
        ordering = ["at", "id"]
        # The admin's event list, newest first, and its date drill-down.
        indexes = [models.Index(fields=["at"], name="event_at")]

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M:%S} {self.status}/{self.step}: {self.message}"
