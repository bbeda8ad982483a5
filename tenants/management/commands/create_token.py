from django.core.management.base import BaseCommand, CommandError

from tenants.models import Product
from tenants.services import command_actor, token_create


class Command(BaseCommand):
    help = "Create an API token for a product; prints only the token (it is not stored)."

    def add_arguments(self, parser):
        parser.add_argument("tenant_slug")
        parser.add_argument("product_slug")
        parser.add_argument("--name", default="")

    def handle(self, *args, tenant_slug, product_slug, name, **options):
        product = Product.objects.filter(tenant__slug=tenant_slug, slug=product_slug).first()
        if product is None:
            raise CommandError(f"No product {tenant_slug}/{product_slug}.")
        _, plaintext = token_create(tenant=product.tenant, product=product, name=name,
                                    actor=command_actor())
        self.stdout.write(plaintext)
