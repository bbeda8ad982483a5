from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from signing.accounts import account_create


class Command(BaseCommand):
    help = "Add an ACME account (a CA directory). It registers at the CA on first use."

    def add_arguments(self, parser):
        parser.add_argument("name")
        parser.add_argument("--directory", required=True, help="ACME directory URL")
        parser.add_argument("--contact", default="", help="contact e-mail")
        parser.add_argument("--tls-ca", default="", help="CA bundle of the directory's TLS cert")
        parser.add_argument("--eab-kid", default="")
        parser.add_argument("--eab-hmac-key", default="", help="base64url EAB HMAC key")
        parser.add_argument("--profile", default="", help="ACME profile name")
        parser.add_argument("--default", action="store_true", help="make it the default")

    def handle(self, *args, **o):
        try:
            account = account_create(
                name=o["name"], directory_url=o["directory"], contact_email=o["contact"],
                tls_ca_file=o["tls_ca"], eab_kid=o["eab_kid"], eab_hmac_key=o["eab_hmac_key"],
                profile=o["profile"], is_default=o["default"])
        except ValidationError as exc:
            raise CommandError("; ".join(exc.messages)) from None
        self.stdout.write(account.name)
