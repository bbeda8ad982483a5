"""After a full issuance, no secret is anywhere it could leak from: database, logs, broker
messages, admin pages."""
from __future__ import annotations

import logging

import pytest
from django.conf import settings
from django.test import Client as DjangoClient
from dramatiq import Middleware, get_broker

from csrproxy import secretbox
from signing.models import AcmeAccount
from tests.csrs import ec_key, make_csr
from tests.database import database_text, token_secret_part
from tests.e2e.helpers import Client

pytestmark = pytest.mark.e2e


class RecordMessages(Middleware):
    def __init__(self) -> None:
        self.encoded: list[bytes] = []

    def before_enqueue(self, broker, message, delay):
        self.encoded.append(message.encode())


@pytest.fixture
def broker_messages():
    broker = get_broker()
    recorder = RecordMessages()
    broker.add_middleware(recorder)
    yield recorder.encoded
    broker.middleware.remove(recorder)


def test_no_secret_in_database_logs_messages_or_admin(stack, worker, acme_token, acme_product,
                                                      broker_messages, caplog,
                                                      django_user_model):
    caplog.set_level(logging.DEBUG)
    body = Client(stack, acme_token).issue(make_csr([f"secret.{acme_product.zone}"], ec_key()))
    assert body["status"] == "valid", body
    account = AcmeAccount.objects.get(is_default=True)
    key_pem = secretbox.decrypt(account.key_encrypted).decode()
    key_body = "".join(line for line in key_pem.splitlines() if not line.startswith("-----"))
    secrets = {
        "token": acme_token,
        "token secret part": token_secret_part(acme_token),
        # A P-256 PKCS#8 body opens with the same 48 characters for every key: look for the
        # private scalar that follows them.
        "account key": key_body[48:90],
        "PowerDNS API key": settings.PDNS_API_KEY,
    }
    admin = django_user_model.objects.create_superuser("root", password="pw-root")
    pages = DjangoClient()
    pages.force_login(admin)
    admin_text = "".join(
        pages.get(url).content.decode()
        for url in (f"/admin/signing/acmeaccount/{account.pk}/change/",
                    f"/admin/signing/certificaterequest/{body['id']}/change/",
                    "/admin/tenants/apitoken/")
    )
    places = {
        "database": database_text(),
        "test process logs": caplog.text,
        "worker log": worker.log_path.read_text(errors="replace"),
        "broker messages": b"\n".join(broker_messages).decode(errors="replace"),
        "admin pages": admin_text,
    }
    assert broker_messages, "the recorder saw no message: the test would prove nothing"
    for place, text in places.items():
        for what, secret in secrets.items():
            assert secret not in text, f"{what} found in {place}"
