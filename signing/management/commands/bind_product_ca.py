from django.core.management.base import BaseCommand, CommandError

from signing.accounts import product_bind_account
from signing.models import AcmeAccount
from tenants.models import Product


class Command(BaseCommand):
    help = ("Order a product's new certificates from ACME account ACCOUNT ('default' for the "
            "default account). Requests in flight finish on the account they started with.")

    def add_arguments(self, parser):
        parser.add_argument("tenant_slug")
        parser.add_argument("product_slug")
        parser.add_argument("account")

    def handle(self, *args, tenant_slug, product_slug, account, **options):
        product = Product.objects.filter(tenant__slug=tenant_slug, slug=product_slug).first()
        if product is None:
            raise CommandError(f"No product {tenant_slug}/{product_slug}.")
        target = None
        if account != "default":
            target = AcmeAccount.objects.filter(name=account).first()
            if target is None:
                raise CommandError(f"No ACME account {account!r}.")
        product_bind_account(product=product, account=target)
        self.stdout.write(f"{product} -> {target or 'default'}")
