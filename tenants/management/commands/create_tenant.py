from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from tenants.services import command_actor, tenant_create


class Command(BaseCommand):
    help = "Create a tenant (a publisher)."

    def add_arguments(self, parser):
        parser.add_argument("slug")
        parser.add_argument("--name", required=True)

    def handle(self, *args, slug, name, **options):
        try:
            tenant = tenant_create(slug=slug, name=name, actor=command_actor())
        except ValidationError as exc:
            raise CommandError("; ".join(exc.messages)) from None
        self.stdout.write(tenant.slug)
