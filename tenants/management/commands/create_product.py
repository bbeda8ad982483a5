from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from dns_provisioning.powerdns import PowerDnsError
from dns_provisioning.services import product_dns_sync
from tenants.models import Tenant
from tenants.services import command_actor, product_create


class Command(BaseCommand):
    help = "Create a product, publish its DNS subtree in PowerDNS and print its zone."

    def add_arguments(self, parser):
        parser.add_argument("tenant_slug")
        parser.add_argument("product_slug")
        parser.add_argument("--zone", default="", help="custom zone (default: product.tenant.base)")
        parser.add_argument("--allow-wildcard", action="store_true")
        parser.add_argument("--legacy-subject", default="",
                            help='mark as the public legacy product, e.g. "CN=go.example.com"')

    def handle(self, *args, tenant_slug, product_slug, zone, allow_wildcard, legacy_subject,
               **options):
        tenant = Tenant.objects.filter(slug=tenant_slug).first()
        if tenant is None:
            raise CommandError(f"No tenant {tenant_slug!r}.")
        try:
            with transaction.atomic():  # no product without its DNS
                product = product_create(tenant=tenant, slug=product_slug, zone=zone,
                                         allow_wildcard=allow_wildcard,
                                         legacy_subject=legacy_subject,
                                         actor=command_actor())
                product_dns_sync(product)
        except ValidationError as exc:
            raise CommandError("; ".join(exc.messages)) from None
        except PowerDnsError as exc:
            raise CommandError(f"DNS not provisioned, product not created: {exc}") from None
        self.stdout.write(product.zone)
