"""ACME accounts: the default one from settings, keys encrypted at rest, registered once."""
from __future__ import annotations

from django.conf import settings
from django.db import transaction

from csrproxy import secretbox
from tenants.models import Product

from . import acme_ca
from .models import AcmeAccount, ProductAcmeAccount


def account_default() -> AcmeAccount:
    """The default account; created from the ACME_* settings on first use."""
    account = AcmeAccount.objects.filter(is_default=True).first()
    if account is not None:
        return account
    with transaction.atomic():
        account, _ = AcmeAccount.objects.select_for_update().get_or_create(
            is_default=True,
            defaults={
                "name": "default",
                "directory_url": settings.ACME_DIRECTORY_URL,
                "contact_email": settings.ACME_CONTACT_EMAIL,
                "eab_kid": settings.ACME_EAB_KID,
                "eab_hmac_key_encrypted": (
                    secretbox.encrypt(settings.ACME_EAB_HMAC_KEY.encode())
                    if settings.ACME_EAB_HMAC_KEY else ""
                ),
                "tls_ca_file": settings.ACME_TLS_CA,
            },
        )
    return account


def account_for_product(product: Product) -> AcmeAccount:
    """The account a new request of this product orders from."""
    binding = ProductAcmeAccount.objects.select_related("account").filter(product=product).first()
    return binding.account if binding else account_default()


def account_create(*, name: str, directory_url: str, contact_email: str = "",
                   tls_ca_file: str = "", eab_kid: str = "", eab_hmac_key: str = "",
                   profile: str = "", is_default: bool = False) -> AcmeAccount:
    account = AcmeAccount(name=name, directory_url=directory_url, contact_email=contact_email,
                          tls_ca_file=tls_ca_file, eab_kid=eab_kid, profile=profile,
                          is_default=is_default)
    account_set_eab_hmac_key(account, eab_hmac_key)
    account.full_clean()
    account.save()
    return account


def product_bind_account(*, product: Product, account: AcmeAccount | None) -> None:
    """Order this product's future certificates from ``account`` (None: the default)."""
    if account is None:
        ProductAcmeAccount.objects.filter(product=product).delete()
    else:
        ProductAcmeAccount.objects.update_or_create(product=product,
                                                    defaults={"account": account})


def account_set_eab_hmac_key(account: AcmeAccount, hmac_key: str) -> None:
    account.eab_hmac_key_encrypted = secretbox.encrypt(hmac_key.encode()) if hmac_key else ""


def account_access(account: AcmeAccount) -> acme_ca.Account:
    """Decrypted credentials for the adapter; registers the account at the CA the first time.

    The row lock makes sure two workers racing on a fresh account register it only once.
    """
    if not account.account_url:
        with transaction.atomic():
            account = AcmeAccount.objects.select_for_update().get(pk=account.pk)
            if not account.key_encrypted:
                account.key_encrypted = secretbox.encrypt(acme_ca.account_key_generate())
            if not account.account_url:
                account.account_url = acme_ca.account_register(_access(account))
            account.save(update_fields=["key_encrypted", "account_url"])
    return _access(account)


def _access(account: AcmeAccount) -> acme_ca.Account:
    eab_key = account.eab_hmac_key_encrypted
    return acme_ca.Account(
        directory_url=account.directory_url,
        key_pem=secretbox.decrypt(account.key_encrypted),
        account_url=account.account_url,
        tls_ca_file=account.tls_ca_file,
        contact_email=account.contact_email,
        eab_kid=account.eab_kid,
        eab_hmac_key=secretbox.decrypt(eab_key).decode() if eab_key else "",
        profile=account.profile,
    )
