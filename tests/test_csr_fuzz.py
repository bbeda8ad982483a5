"""Fuzzing the CSR endpoint: whatever arrives, the answer is never a 5xx, every refusal is a
problem document, a refusal stores nothing, and whatever is accepted obeys the name policy.

The client and product come from function-scoped fixtures shared by all of a test's examples
(only the request changes between examples), hence the suppressed health check.
"""
from __future__ import annotations

import functools
import json
import re

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dns_provisioning.models import ChallengeRecord
from signing.models import CertificateRequest

from .csrs import csr_der, csr_with_dns_bytes, der_to_pem, make_csr

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.filterwarnings("ignore:Attribute's length:UserWarning"),  # CN > 64, refused
]

URL = "/api/v1/certificates/"
PROBLEM = "application/problem+json"
ACCEPTED_NAME = re.compile(r"(\*\.)?([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)*[a-z0-9-]+")

fuzz = settings(max_examples=250, deadline=None, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture,
                                        HealthCheck.too_slow])


@functools.cache
def _ec_key():
    return ec.generate_private_key(ec.SECP256R1())


@functools.cache
def _rsa_key():
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@functools.cache
def _base_pem(zone: str, kind: str) -> bytes:
    """A valid CSR with some structure to break: two SANs, key usage, basic constraints."""
    key = _rsa_key() if kind == "rsa" else _ec_key()
    usage = x509.KeyUsage(digital_signature=True, content_commitment=False,
                          key_encipherment=kind == "rsa", data_encipherment=False,
                          key_agreement=False, key_cert_sign=False, crl_sign=False,
                          encipher_only=False, decipher_only=False)
    return make_csr([f"host.{zone}", f"*.{zone}"], key=key, extensions=[
        (usage, True), (x509.BasicConstraints(ca=False, path_length=None), True)])


def _check(client, zone: str, data: bytes, content_type: str):
    """POST and check the invariants; returns the response."""
    before = (CertificateRequest.objects.count(), ChallengeRecord.objects.count())
    response = client.post(URL, data, content_type=content_type)
    assert response.status_code < 500, response.content
    after = (CertificateRequest.objects.count(), ChallengeRecord.objects.count())
    if response.status_code >= 400:
        assert response["Content-Type"] == PROBLEM, response.content
        body = response.json()
        assert body["type"].startswith("urn:csrproxy:problem:"), body
        assert body["status"] == response.status_code
        assert after == before, "a refused CSR left rows behind"
    else:
        assert response.status_code == 202, response.content
        names = response.json()["names"]
        assert names and len(names) == len(set(names)) <= 10
        for name in names:
            assert ACCEPTED_NAME.fullmatch(name) and len(name) <= 253, name
            assert name.removeprefix("*.") == zone or name.endswith("." + zone), name
        assert after == (before[0] + 1, before[1])
    return response


def _mutate(data, edits):
    """Apply (operation, position, value) edits to a str or bytes."""
    for op, position, value in edits:
        i = position % (len(data) + 1)
        if op == "insert":
            data = data[:i] + value + data[i:]
        elif op == "replace" and data:
            i = min(i, len(data) - 1)
            data = data[:i] + value + data[i + 1:]
        elif op == "delete":
            data = data[:i] + data[i + 1:]
    return data


def _edits(values):
    # Positions are taken modulo the length; small ones (headers, version, subject) often.
    positions = st.integers(min_value=0, max_value=4000) | st.integers(min_value=0, max_value=40)
    return st.lists(st.tuples(st.sampled_from(["insert", "replace", "delete"]), positions, values),
                    min_size=1, max_size=4)


BASE64_CHARS = st.sampled_from(
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=\n-")
# Bytes that mean something in DER: lengths, tags (SEQUENCE, SET, strings, [2] dNSName).
DER_BYTES = st.sampled_from([0x00, 0x01, 0x02, 0x03, 0x04, 0x0C, 0x13, 0x16, 0x1E, 0x30,
                             0x31, 0x7F, 0x80, 0x81, 0x82, 0xA0, 0xFF]).map(lambda b: bytes([b]))


class TestFuzzBodies:
    @fuzz
    @given(data=st.binary(max_size=2048),
           content_type=st.sampled_from(["application/pkcs10", "application/json"]))
    def test_random_bytes(self, api, acme_product, data, content_type):
        _check(api, acme_product.zone, data, content_type)

    @fuzz
    @given(text=st.text(max_size=1024), raw=st.booleans())
    def test_random_text_as_the_csr(self, api, acme_product, text, raw):
        if raw:
            _check(api, acme_product.zone, text.encode("utf-8", "surrogatepass"),
                   "application/pkcs10")
        else:
            _check(api, acme_product.zone, json.dumps({"csr": text}).encode(),
                   "application/json")

    @fuzz
    @given(value=st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=40),
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
            st.sampled_from(["csr", "pem", ""]) | st.text(max_size=5), inner, max_size=4),
        max_leaves=10))
    def test_random_json(self, api, acme_product, value):
        _check(api, acme_product.zone, json.dumps(value).encode(), "application/json")


class TestFuzzMutatedCsrs:
    @fuzz
    @given(kind=st.sampled_from(["ec", "rsa"]), edits=_edits(BASE64_CHARS))
    def test_mutated_base64(self, api, acme_product, kind, edits):
        pem = _base_pem(acme_product.zone, kind).decode()
        head, _, rest = pem.partition("\n")
        body, _, tail = rest.rpartition("-----END")
        mutated = head + "\n" + _mutate(body, edits) + "-----END" + tail
        _check(api, acme_product.zone, json.dumps({"csr": mutated}).encode(), "application/json")

    @fuzz
    @given(kind=st.sampled_from(["ec", "rsa"]),
           edits=_edits(DER_BYTES | st.binary(min_size=1, max_size=1)))
    def test_mutated_der(self, api, acme_product, kind, edits):
        der = _mutate(csr_der(_base_pem(acme_product.zone, kind)), edits)
        _check(api, acme_product.zone, der_to_pem(der).encode(), "application/pkcs10")

    @fuzz
    @given(edits=_edits(st.characters(codec="utf-8")))
    def test_mutated_pem_text(self, api, acme_product, edits):
        pem = _mutate(_base_pem(acme_product.zone, "ec").decode(), edits)
        _check(api, acme_product.zone, json.dumps({"csr": pem}).encode(), "application/json")


LABEL = st.text(alphabet=st.sampled_from("abcXYZ019-_*. \x00\t\n") | st.characters(),
                max_size=12)


@st.composite
def dns_names(draw, zone: str) -> bytes:
    """Names near the zone (so the in-zone rules get exercised) and far from it."""
    labels = draw(st.lists(LABEL, min_size=0, max_size=4))
    suffix = draw(st.sampled_from([zone, zone.upper(), "evil" + zone, "example.com", "", "."]))
    name = ".".join([*labels, suffix]) if suffix else ".".join(labels)
    return name.encode("utf-8", "surrogatepass")


class TestFuzzNames:
    @fuzz
    @given(data=st.data(), with_cn=st.booleans())
    def test_random_san_names(self, api, acme_product, data, with_cn):
        zone = acme_product.zone
        names = data.draw(st.lists(dns_names(zone), min_size=0, max_size=4), label="names")
        cn = None
        if with_cn:
            cn = data.draw(st.sampled_from(names) | dns_names(zone), label="cn") if names \
                else data.draw(dns_names(zone), label="cn")
        pem = csr_with_dns_bytes(names, key=_ec_key(), cn=cn)
        _check(api, zone, pem, "application/pkcs10")
