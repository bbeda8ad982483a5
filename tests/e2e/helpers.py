"""What an end-to-end test does as a client: submit over HTTP, wait, check the chain."""
from __future__ import annotations

import time

import requests
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.verification import PolicyBuilder, Store
from django.conf import settings

from dns_provisioning import powerdns
from tests.csrs import public_key_der

FINISHED = {"valid", "invalid"}


class Client:
    def __init__(self, base_url: str, token: str | None) -> None:
        self.base_url = base_url.rstrip("/")
        self.session = requests.Session()
        if token:
            self.session.headers["Authorization"] = f"Bearer {token}"

    def submit(self, csr_pem: bytes) -> requests.Response:
        return self.session.post(f"{self.base_url}/api/v1/certificates/",
                                 json={"csr": csr_pem.decode()}, timeout=30)

    def get(self, request_id: int) -> dict:
        response = self.session.get(f"{self.base_url}/api/v1/certificates/{request_id}/",
                                    timeout=30)
        response.raise_for_status()
        return response.json()

    def wait(self, request_id: int, timeout: float = 60) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            body = self.get(request_id)
            if body["status"] in FINISHED:
                return body
            assert time.monotonic() < deadline, f"request {request_id} still {body['status']}"
            time.sleep(0.1)

    def issue(self, csr_pem: bytes, timeout: float = 60) -> dict:
        response = self.submit(csr_pem)
        assert response.status_code == 202, response.text
        return self.wait(response.json()["id"], timeout)


def verify_chain(chain_pem: str, root_pem: bytes, names: list[str], key) -> x509.Certificate:
    """Path-validate the chain to Pebble's root for every name; the leaf holds our key."""
    certs = x509.load_pem_x509_certificates(chain_pem.encode())
    root = x509.load_pem_x509_certificate(root_pem)
    for name in names:
        host = "anything." + name[2:] if name.startswith("*.") else name
        verifier = PolicyBuilder().store(Store([root])).build_server_verifier(x509.DNSName(host))
        verifier.verify(certs[0], certs[1:])
    leaf = certs[0]
    leaf_key = leaf.public_key().public_bytes(serialization.Encoding.DER,
                                              serialization.PublicFormat.SubjectPublicKeyInfo)
    assert leaf_key == public_key_der(key), "the leaf does not carry the request's public key"
    san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sorted(san.get_values_for_type(x509.DNSName)) == sorted(names)
    return leaf


def txt_values(name: str) -> list[str]:
    return powerdns.query(settings.PDNS_DNS_SERVERS[0], f"_acme-challenge.{name}", "TXT")


def wait_txt_gone(names: list[str], timeout: float = 10) -> None:
    """Cleanup runs just after delivery: give it a moment, then insist."""
    deadline = time.monotonic() + timeout
    bases = {n.removeprefix("*.") for n in names}
    while any(txt_values(n) for n in bases):
        assert time.monotonic() < deadline, {n: txt_values(n) for n in bases}
        time.sleep(0.1)
