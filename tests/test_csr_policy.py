"""The CSR policy at the API: every broken rule is a 4xx problem document with that rule's
``type``, and a refused CSR leaves nothing behind: no request row, no DNS change.

Each case builds its CSR (or body) inside the test: with ``cryptography`` where it can, with
the ``openssl`` command line or by editing DER bytes where it can't.
"""
from __future__ import annotations

import functools
import ipaddress
import json
import logging

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa
from cryptography.x509.oid import NameOID
from rest_framework.test import APIClient

from dns_provisioning.models import ChallengeRecord
from signing.csr import MAX_CSR_BYTES
from signing.models import CertificateRequest
from tenants.services import token_create
from tests.database import database_text

from .conftest import provisioned_product
from .csrs import (
    ECDSA_WITH_SHA256,
    SHA256_WITH_RSA,
    csr_der,
    csr_with_dns_bytes,
    der_tlv,
    der_to_pem,
    edit_csr,
    flip_last_signature_byte,
    key_pem,
    make_csr,
    openssl,
    openssl_csr,
    resign_csr,
)

pytestmark = [
    pytest.mark.django_db,
    # cryptography warns while reading a CN over 64 characters, which the policy then refuses
    pytest.mark.filterwarnings("ignore:Attribute's length:UserWarning"),
]

URL = "/api/v1/certificates/"
PROBLEM = "application/problem+json"


# Keys are made once per run: RSA generation is slow.

@functools.cache
def rsa_key(bits: int = 2048, exponent: int = 65537):
    return rsa.generate_private_key(public_exponent=exponent, key_size=bits)


@functools.cache
def ec_key(curve: type[ec.EllipticCurve] = ec.SECP256R1):
    return ec.generate_private_key(curve())


@functools.cache
def openssl_rsa_key(bits: int, exponent: int) -> bytes:
    return openssl("genpkey", "-algorithm", "RSA", "-pkeyopt", f"rsa_keygen_bits:{bits}",
                   "-pkeyopt", f"rsa_keygen_pubexp:{exponent}")


@functools.cache
def dsa_key_pem() -> bytes:
    return key_pem(dsa.generate_private_key(key_size=2048))


# Products: the wildcard product of ``acme_product`` (max 10 names) and a strict one.

@pytest.fixture
def strict_product(acme_tenant, run_id):
    """No wildcards, at most two names."""
    with provisioned_product(acme_tenant, "strict", run_id) as product:
        product.max_names = 2
        product.save(update_fields=["max_names"])
        yield product


@pytest.fixture
def strict_api(strict_product):
    token = token_create(tenant=strict_product.tenant, product=strict_product, name="t")[1]
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return client


def post(client: APIClient, body: tuple[bytes, str]):
    data, content_type = body
    return client.post(URL, data, content_type=content_type)


def as_json(obj) -> tuple[bytes, str]:
    return json.dumps(obj).encode(), "application/json"


def as_pkcs10(data: bytes | str) -> tuple[bytes, str]:
    return (data.encode() if isinstance(data, str) else data), "application/pkcs10"


def csr_body(pem: bytes | str) -> tuple[bytes, str]:
    return as_json({"csr": pem.decode() if isinstance(pem, bytes) else pem})


def assert_refused(response, status: int, kind: str) -> dict:
    """A problem document of ``kind``; nothing stored, nothing published."""
    assert response.status_code == status, response.content
    assert response["Content-Type"] == PROBLEM
    body = response.json()
    assert body["type"] == f"urn:csrproxy:problem:{kind}", body
    assert body["status"] == status
    assert not CertificateRequest.objects.exists()
    assert not ChallengeRecord.objects.exists()
    return body


def names_csr(*names: str, cn: str | None = "", **kwargs):
    """A builder: a CSR for ``names`` (``{z}`` is the product's zone; ``cn`` as make_csr's)."""
    return lambda z: make_csr([n.format(z=z) for n in names],
                              cn=cn.format(z=z) if cn else cn, **kwargs)


def with_san(*general_names, cn: str | None = None):
    """A builder: a CSR whose SAN holds ``general_names`` (strings are DNS names)."""
    def build(z: str) -> bytes:
        entries = [x509.DNSName(g.format(z=z)) if isinstance(g, str) else g
                   for g in general_names]
        subject = [x509.NameAttribute(NameOID.COMMON_NAME, cn.format(z=z))] if cn else []
        return (x509.CertificateSigningRequestBuilder()
                .subject_name(x509.Name(subject))
                .add_extension(x509.SubjectAlternativeName(entries), critical=False)
                .sign(ec_key(), hashes.SHA256())
                .public_bytes(serialization.Encoding.PEM))
    return build


def good_csr(z: str, key=None, hash_alg=None) -> bytes:
    return make_csr([f"host.{z}"], key=key, hash_alg=hash_alg)


# ---------------------------------------------------------------------------------------------
# The body: what reaches the CSR parser at all.

BODY_CASES = [
    pytest.param(lambda z: as_json({"pem": good_csr(z).decode()}), 400, "invalid-request",
                 id="json-without-a-csr-field-is-refused"),
    pytest.param(lambda z: as_json({"csr": None}), 400, "invalid-request",
                 id="csr-null-is-refused"),
    pytest.param(lambda z: as_json({"csr": [good_csr(z).decode()]}), 400, "invalid-request",
                 id="csr-as-a-list-is-refused"),
    pytest.param(lambda z: as_json({"csr": {"pem": good_csr(z).decode()}}), 400,
                 "invalid-request", id="csr-as-an-object-is-refused"),
    pytest.param(lambda z: as_json({"csr": True}), 400, "invalid-request",
                 id="csr-as-a-boolean-is-refused"),
    pytest.param(lambda z: as_json({"csr": 12345}), 400, "csr-malformed",
                 id="csr-as-a-number-is-not-a-pem"),
    pytest.param(lambda z: as_json({"csr": ""}), 400, "invalid-request",
                 id="empty-csr-string-is-refused"),
    pytest.param(lambda z: as_json([good_csr(z).decode()]), 400, "invalid-request",
                 id="json-body-that-is-not-an-object-is-refused"),
    pytest.param(lambda z: (b'{"csr": "-----BEGIN', "application/json"), 400, "malformed",
                 id="truncated-json-is-refused"),
    pytest.param(lambda z: (good_csr(z), "text/plain"), 415, "unsupported-media-type",
                 id="text-plain-content-type-is-refused"),
    pytest.param(lambda z: (b"csr=abc", "application/x-www-form-urlencoded"), 415,
                 "unsupported-media-type", id="form-content-type-is-refused"),
    pytest.param(lambda z: as_pkcs10(b"\xffgarbage\x13\x37"), 400, "csr-malformed",
                 id="raw-pkcs10-garbage-is-refused"),
    pytest.param(lambda z: as_pkcs10(b"\x00" + good_csr(z)), 400, "invalid-request",
                 id="raw-pkcs10-with-a-nul-byte-is-refused"),
    pytest.param(lambda z: as_pkcs10(b""), 400, "invalid-request",
                 id="raw-pkcs10-empty-body-is-refused"),
    pytest.param(lambda z: as_json({"csr": "\ud800" + good_csr(z).decode()}), 400,
                 "invalid-request", id="lone-surrogate-in-json-is-refused"),
    pytest.param(lambda z: (b"[" * 30000, "application/json"), 400, "malformed",
                 id="deeply-nested-json-is-refused"),
]


class TestBodyRules:
    @pytest.mark.parametrize(("build", "status", "kind"), BODY_CASES)
    def test_bad_body_is_refused(self, api, acme_product, build, status, kind):
        assert_refused(post(api, build(acme_product.zone)), status, kind)


# ---------------------------------------------------------------------------------------------
# The envelope: one PEM CSR and nothing else, at most MAX_CSR_BYTES.

def _two_blocks(z: str) -> bytes:
    return good_csr(z) + make_csr([f"other.{z}"])


def _with_certificate(z: str) -> bytes:
    return good_csr(z) + der_to_pem(b"\x30\x03\x02\x01\x00", "CERTIFICATE").encode()


def _garbage_base64(z: str) -> str:
    return ("-----BEGIN CERTIFICATE REQUEST-----\n" + "QUJD" * 40 + "\n"
            "-----END CERTIFICATE REQUEST-----\n")


def _bad_base64_padding(z: str) -> str:
    pem = good_csr(z).decode().splitlines()
    return "\n".join([pem[0], "====" + pem[1][4:], *pem[2:]]) + "\n"


def _truncated_der(z: str) -> str:
    return der_to_pem(csr_der(good_csr(z))[:-20])


def _trailing_der_bytes(z: str) -> str:
    return der_to_pem(csr_der(good_csr(z)) + b"\x00\x00")


def _mismatched_labels(z: str) -> str:
    return good_csr(z).decode().replace("BEGIN CERTIFICATE", "BEGIN NEW CERTIFICATE")


def _version_2(z: str) -> bytes:
    """CSR version 1 (that is, v2): only v1 (0) exists."""
    return resign_csr(good_csr(z, key=ec_key()), ec_key(), {b"\x02\x01\x00": b"\x02\x01\x01"})


def _oversized(z: str) -> str:
    return good_csr(z).decode() + "\n" * (MAX_CSR_BYTES + 1)


ENVELOPE_CASES = [
    pytest.param(lambda z: csr_body(_oversized(z)), 413, "csr-too-large",
                 id="csr-padded-over-the-size-limit-is-refused"),
    pytest.param(lambda z: as_pkcs10(good_csr(z) + b" " * MAX_CSR_BYTES), 413, "csr-too-large",
                 id="raw-pkcs10-body-over-the-csr-limit-is-refused"),
    pytest.param(lambda z: as_pkcs10(b"A" * (1024 * 1024)), 413, "body-too-large",
                 id="one-megabyte-body-is-refused-before-it-is-read"),
    pytest.param(lambda z: csr_body("hello\n" + good_csr(z).decode()), 400, "csr-malformed",
                 id="text-before-the-pem-block-is-refused"),
    pytest.param(lambda z: csr_body(good_csr(z).decode() + "thanks!\n"), 400, "csr-malformed",
                 id="text-after-the-pem-block-is-refused"),
    pytest.param(lambda z: csr_body(_two_blocks(z)), 400, "csr-malformed",
                 id="two-csr-blocks-are-refused"),
    pytest.param(lambda z: as_pkcs10(_two_blocks(z)), 400, "csr-malformed",
                 id="two-csr-blocks-as-raw-pkcs10-are-refused"),
    pytest.param(lambda z: csr_body(_with_certificate(z)), 400, "csr-malformed",
                 id="csr-followed-by-a-certificate-block-is-refused"),
    pytest.param(lambda z: csr_body(der_to_pem(csr_der(good_csr(z)), "CERTIFICATE")), 400,
                 "csr-malformed", id="csr-labelled-as-a-certificate-is-refused"),
    pytest.param(lambda z: as_pkcs10(csr_der(good_csr(z))), 400, "invalid-request",
                 id="der-instead-of-pem-is-refused"),
    pytest.param(lambda z: as_pkcs10(csr_der(good_csr(z)).replace(b"\x00", b"\x01")), 400,
                 "csr-malformed", id="binary-body-without-nul-bytes-is-refused"),
    pytest.param(lambda z: csr_body("".join(good_csr(z).decode().splitlines()[1:-1])), 400,
                 "csr-malformed", id="bare-base64-without-pem-armour-is-refused"),
    pytest.param(lambda z: csr_body(_garbage_base64(z)), 400, "csr-malformed",
                 id="pem-armour-around-garbage-base64-is-refused"),
    pytest.param(lambda z: csr_body(_bad_base64_padding(z)), 400, "csr-malformed",
                 id="pem-with-padding-in-the-middle-is-refused"),
    pytest.param(lambda z: csr_body(_truncated_der(z)), 400, "csr-malformed",
                 id="truncated-der-is-refused"),
    pytest.param(lambda z: csr_body(_trailing_der_bytes(z)), 400, "csr-malformed",
                 id="der-with-trailing-bytes-is-refused"),
    pytest.param(lambda z: csr_body(good_csr(z).decode()[:-30]), 400, "csr-malformed",
                 id="pem-without-its-end-line-is-refused"),
    pytest.param(lambda z: csr_body(_mismatched_labels(z)), 400, "csr-malformed",
                 id="begin-and-end-labels-that-differ-are-refused"),
    pytest.param(lambda z: csr_body(_version_2(z)), 400, "csr-malformed",
                 id="csr-version-other-than-v1-is-refused"),
    pytest.param(lambda z: csr_body(good_csr(z).decode().replace("\n", "\n\u00a0", 1)), 400,
                 "csr-malformed", id="non-ascii-inside-the-pem-is-refused"),
]


class TestEnvelopeRules:
    @pytest.mark.parametrize(("build", "status", "kind"), ENVELOPE_CASES)
    def test_bad_envelope_is_refused(self, api, acme_product, build, status, kind):
        assert_refused(post(api, build(acme_product.zone)), status, kind)


# ---------------------------------------------------------------------------------------------
# Proof of possession: the CSR verifies with its own key, hashed with SHA-2 (256/384/512).

def _signed_by_another_key(z: str) -> str:
    mine = x509.load_pem_x509_csr(good_csr(z, key=ec_key()))
    other = x509.load_pem_x509_csr(good_csr(z, key=ec.generate_private_key(ec.SECP256R1())))
    body = mine.tbs_certrequest_bytes + ECDSA_WITH_SHA256 + der_tlv(0x03, b"\0" + other.signature)
    return der_to_pem(der_tlv(0x30, body))


def _ecdsa_signature_labelled_rsa(z: str) -> str:
    csr = x509.load_pem_x509_csr(good_csr(z, key=ec_key()))
    body = csr.tbs_certrequest_bytes + SHA256_WITH_RSA + der_tlv(0x03, b"\0" + csr.signature)
    return der_to_pem(der_tlv(0x30, body))


def _rsa_openssl(digest: str, *extra: str):
    return lambda z: openssl_csr(key_pem(rsa_key()), f"/CN=host.{z}", [f"host.{z}"], digest,
                                 extra)


SIGNATURE_CASES = [
    pytest.param(_rsa_openssl("sha1"), "csr-signature-algorithm",
                 id="sha1-signed-csr-is-refused"),
    pytest.param(_rsa_openssl("md5"), "csr-signature-algorithm", id="md5-signed-csr-is-refused"),
    pytest.param(lambda z: good_csr(z, hash_alg=hashes.SHA224()), "csr-signature-algorithm",
                 id="sha224-signed-csr-is-refused"),
    pytest.param(lambda z: openssl_csr(key_pem(ec_key()), f"/CN=host.{z}", [f"host.{z}"],
                                       "sha3-256"),
                 "csr-signature-algorithm", id="sha3-256-signed-csr-is-refused"),
    pytest.param(_rsa_openssl("sha256", "-sigopt", "rsa_padding_mode:pss"),
                 "csr-signature-algorithm", id="rsa-pss-signature-is-refused"),
    pytest.param(_ecdsa_signature_labelled_rsa, "csr-signature-algorithm",
                 id="ecdsa-signature-labelled-as-rsa-is-refused"),
    pytest.param(lambda z: flip_last_signature_byte(good_csr(z)), "csr-bad-signature",
                 id="corrupted-signature-is-refused"),
    pytest.param(lambda z: flip_last_signature_byte(good_csr(z, key=rsa_key())),
                 "csr-bad-signature", id="corrupted-rsa-signature-is-refused"),
    pytest.param(_signed_by_another_key, "csr-bad-signature",
                 id="signature-by-another-key-is-refused"),
    pytest.param(lambda z: edit_csr(make_csr([f"aaaa.{z}"]), {b"aaaa": b"bbbb"}),
                 "csr-bad-signature", id="names-edited-after-signing-are-refused"),
]


class TestSignatureRules:
    @pytest.mark.parametrize(("build", "kind"), SIGNATURE_CASES)
    def test_bad_signature_is_refused(self, api, acme_product, build, kind):
        assert_refused(post(api, csr_body(build(acme_product.zone))), 400, kind)


# ---------------------------------------------------------------------------------------------
# Keys: RSA 2048/3072/4096 with e=65537, ECDSA P-256/P-384.

def _key_csr(key_factory):
    return lambda z: make_csr([f"host.{z}"], key=key_factory())


def _edwards_csr(key_factory):
    """EdDSA signs the message itself: no hash to choose."""
    def build(z: str) -> bytes:
        return (x509.CertificateSigningRequestBuilder()
                .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"host.{z}")]))
                .add_extension(x509.SubjectAlternativeName([x509.DNSName(f"host.{z}")]),
                               critical=False)
                .sign(key_factory(), None).public_bytes(serialization.Encoding.PEM))
    return build


KEY_CASES = [
    pytest.param(_key_csr(lambda: rsa_key(1024)), id="rsa-1024-is-refused"),
    pytest.param(_key_csr(lambda: rsa_key(1536)), id="rsa-1536-is-refused"),
    pytest.param(_key_csr(lambda: rsa_key(2056)), id="rsa-2056-odd-size-is-refused"),
    pytest.param(_key_csr(lambda: rsa_key(3000)), id="rsa-3000-odd-size-is-refused"),
    pytest.param(_key_csr(lambda: rsa_key(2048, 3)), id="rsa-exponent-3-is-refused"),
    pytest.param(lambda z: openssl_csr(openssl_rsa_key(2048, 17), f"/CN=host.{z}",
                                       [f"host.{z}"]),
                 id="rsa-exponent-17-is-refused"),
    pytest.param(lambda z: openssl_csr(dsa_key_pem(), f"/CN=host.{z}", [f"host.{z}"]),
                 id="dsa-2048-is-refused"),
    pytest.param(_edwards_csr(ed25519.Ed25519PrivateKey.generate), id="ed25519-is-refused"),
    pytest.param(_edwards_csr(ed448.Ed448PrivateKey.generate), id="ed448-is-refused"),
    pytest.param(_key_csr(lambda: ec_key(ec.SECP521R1)), id="ecdsa-p521-is-refused"),
    pytest.param(_key_csr(lambda: ec_key(ec.SECP256K1)), id="ecdsa-secp256k1-is-refused"),
    pytest.param(_key_csr(lambda: ec_key(ec.SECP224R1)), id="ecdsa-p224-is-refused"),
    pytest.param(_key_csr(lambda: ec_key(ec.BrainpoolP256R1)),
                 id="ecdsa-brainpool-p256-is-refused"),
]


class TestKeyRules:
    @pytest.mark.parametrize("build", KEY_CASES)
    def test_unsupported_key_is_refused(self, api, acme_product, build):
        assert_refused(post(api, csr_body(build(acme_product.zone))), 400, "key-unsupported")


# ---------------------------------------------------------------------------------------------
# Extensions: no Must-Staple, nothing that asks for a CA.

def _ext_csr(*extensions: x509.ExtensionType, critical: bool = False):
    return lambda z: make_csr([f"host.{z}"], extensions=[(e, critical) for e in extensions])


def _duplicate_san(z: str) -> bytes:
    """Two subjectAltName extensions: an issuerAltName whose OID is edited into a SAN's."""
    names = [x509.DNSName(f"host.{z}")]
    pem = make_csr([f"host.{z}"], key=ec_key(), extensions=[
        (x509.IssuerAlternativeName(names), False)])
    return resign_csr(pem, ec_key(), {b"\x06\x03\x55\x1d\x12": b"\x06\x03\x55\x1d\x11"})


_KEY_CERT_SIGN = x509.KeyUsage(
    digital_signature=True, content_commitment=False, key_encipherment=False,
    data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=False,
    encipher_only=False, decipher_only=False,
)

EXTENSION_CASES = [
    pytest.param(_ext_csr(x509.TLSFeature([x509.TLSFeatureType.status_request])),
                 "must-staple", id="ocsp-must-staple-is-refused"),
    pytest.param(_ext_csr(x509.TLSFeature([x509.TLSFeatureType.status_request_v2,
                                           x509.TLSFeatureType.status_request])),
                 "must-staple", id="must-staple-among-other-tls-features-is-refused"),
    pytest.param(_ext_csr(x509.BasicConstraints(ca=True, path_length=None), critical=True),
                 "ca-requested", id="basic-constraints-ca-true-is-refused"),
    pytest.param(_ext_csr(_KEY_CERT_SIGN), "ca-requested", id="key-usage-key-cert-sign-is-refused"),
    pytest.param(_duplicate_san, "csr-malformed", id="two-san-extensions-are-refused"),
]


class TestExtensionRules:
    @pytest.mark.parametrize(("build", "kind"), EXTENSION_CASES)
    def test_bad_extension_is_refused(self, api, acme_product, build, kind):
        assert_refused(post(api, csr_body(build(acme_product.zone))), 400, kind)


# ---------------------------------------------------------------------------------------------
# Names. ``{z}`` is the product's zone; ``offending`` the names the subproblems must list.

def _non_ascii_san(z: str) -> bytes:
    pem = make_csr([f"xxxx.{z}"], key=ec_key(), cn=None)
    return resign_csr(pem, ec_key(), {b"xxxx": "\u00e9x".encode() + b"x"})


def _cn_as_bit_string(z: str) -> bytes:
    pem = make_csr([f"host.{z}"], key=ec_key())
    return resign_csr(pem, ec_key(), {b"\x55\x04\x03\x0c": b"\x55\x04\x03\x03"})


def _cn_not_utf8(z: str) -> bytes:
    pem = make_csr([f"host.{z}"], key=ec_key(), cn=f"cnxx.{z}")
    return resign_csr(pem, ec_key(), {b"cnxx": b"\xff\xfe\xfd\xfc"})


def _two_cns(z: str) -> bytes:
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"a.{z}"),
                         x509.NameAttribute(NameOID.COMMON_NAME, f"b.{z}")])
    return make_csr_with_subject(subject, [f"a.{z}", f"b.{z}"])


def make_csr_with_subject(subject: x509.Name, names: list[str]) -> bytes:
    return (x509.CertificateSigningRequestBuilder().subject_name(subject)
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in names]),
                           critical=False)
            .sign(ec_key(), hashes.SHA256()).public_bytes(serialization.Encoding.PEM))


def _long_name(z: str, length: int) -> str:
    """A name of exactly ``length`` characters in zone ``z``."""
    return "h" * (length - len(z) - 1) + "." + z


def _parent(z: str) -> str:
    return z.split(".", 1)[1]


L63 = "a" * 63

# (builder, kind, offending names, product)
NAME_CASES = [
    pytest.param(names_csr(), "no-names", [], id="csr-without-any-name-is-refused"),
    pytest.param(with_san("host.{z}", x509.IPAddress(ipaddress.ip_address("192.0.2.1"))),
                 "san-type-unsupported", [], id="ip-address-san-is-refused"),
    pytest.param(with_san("host.{z}", x509.RFC822Name("root@example.com")),
                 "san-type-unsupported", [], id="email-san-is-refused"),
    pytest.param(with_san("host.{z}", x509.UniformResourceIdentifier("https://host.example/")),
                 "san-type-unsupported", [], id="uri-san-is-refused"),
    pytest.param(with_san("host.{z}", x509.DirectoryName(x509.Name([
        x509.NameAttribute(NameOID.COMMON_NAME, "x")]))),
                 "san-type-unsupported", [], id="directory-name-san-is-refused"),
    pytest.param(names_csr("a.{z}", cn="b.{z}"), "cn-not-in-san", [],
                 id="cn-not-among-the-sans-is-refused"),
    pytest.param(with_san("a.{z}", cn="My Server"), "cn-not-in-san", [],
                 id="free-text-cn-next-to-sans-is-refused"),
    pytest.param(_two_cns, "cn-invalid", [], id="two-common-names-are-refused"),
    pytest.param(lambda z: csr_with_dns_bytes([_long_name(z, 65).encode()],
                                              cn=_long_name(z, 65).encode()), "cn-invalid", [],
                 id="cn-longer-than-64-characters-is-refused"),
    pytest.param(_cn_as_bit_string, "subject-invalid", [], id="cn-as-bit-string-bytes-is-refused"),
    pytest.param(_cn_not_utf8, "subject-invalid", [], id="cn-that-is-not-utf8-is-refused"),
    pytest.param(names_csr("a b.{z}"), "name-invalid", ["a b.{z}"],
                 id="space-in-a-name-is-refused"),
    pytest.param(names_csr("a_b.{z}"), "name-invalid", ["a_b.{z}"],
                 id="underscore-in-a-name-is-refused"),
    pytest.param(names_csr("a\x00b.{z}"), "name-invalid", ["a\x00b.{z}"],
                 id="nul-byte-in-a-name-is-refused"),
    pytest.param(names_csr("a\n.{z}"), "name-invalid", ["a\n.{z}"],
                 id="newline-ending-a-label-is-refused"),
    pytest.param(_non_ascii_san, "name-invalid", ["\u00e9xx.{z}"],
                 id="non-ascii-bytes-in-a-dns-san-are-refused"),
    pytest.param(names_csr("h\u00e9.{z}", san=False), "name-invalid", ["h\u00e9.{z}"],
                 id="non-ascii-cn-only-name-is-refused"),
    pytest.param(names_csr("-a.{z}"), "name-invalid", ["-a.{z}"],
                 id="leading-hyphen-is-refused"),
    pytest.param(names_csr("a-.{z}"), "name-invalid", ["a-.{z}"],
                 id="trailing-hyphen-is-refused"),
    pytest.param(names_csr(L63 + "a.{z}", cn=None), "name-invalid", [L63 + "a.{z}"],
                 id="label-of-64-bytes-is-refused"),
    pytest.param(names_csr(f"{L63}.{L63}.{L63}.{L63}.{{z}}", cn=None), "name-invalid",
                 [f"{L63}.{L63}.{L63}.{L63}.{{z}}"], id="name-over-253-bytes-is-refused"),
    pytest.param(names_csr("a.b.c.d.e.f.{z}"), "name-invalid", ["a.b.c.d.e.f.{z}"],
                 id="eleven-labels-are-refused"),
    pytest.param(names_csr("*.b.c.d.e.f.{z}"), "name-invalid", ["*.b.c.d.e.f.{z}"],
                 id="eleven-labels-counting-the-wildcard-are-refused"),
    pytest.param(names_csr("xn--zz.{z}"), "name-invalid", ["xn--zz.{z}"],
                 id="undecodable-xn-label-is-refused"),
    pytest.param(names_csr("xn--ls8h.{z}"), "name-invalid", ["xn--ls8h.{z}"],
                 id="xn-label-of-a-disallowed-code-point-is-refused"),
    pytest.param(names_csr("ab--cd.{z}"), "name-invalid", ["ab--cd.{z}"],
                 id="hyphens-in-positions-3-and-4-are-refused"),
    pytest.param(names_csr("host.{z}."), "name-invalid", ["host.{z}."],
                 id="trailing-dot-is-refused"),
    pytest.param(names_csr("a..{z}"), "name-invalid", ["a..{z}"],
                 id="empty-label-is-refused"),
    pytest.param(names_csr(".{z}"), "name-invalid", [".{z}"], id="leading-dot-is-refused"),
    pytest.param(names_csr("a.*.{z}"), "name-invalid", ["a.*.{z}"],
                 id="wildcard-not-leftmost-is-refused"),
    pytest.param(names_csr("a*.{z}"), "name-invalid", ["a*.{z}"],
                 id="partial-wildcard-label-is-refused"),
    pytest.param(names_csr("*.*.{z}"), "name-invalid", ["*.*.{z}"],
                 id="double-wildcard-is-refused"),
    pytest.param(names_csr("*"), "name-invalid", ["*"], id="bare-wildcard-is-refused"),
    pytest.param(names_csr("evil{z}"), "name-outside-zone", ["evil{z}"],
                 id="zone-as-a-suffix-without-a-label-boundary-is-outside"),
    pytest.param(names_csr("host.example.com"), "name-outside-zone", ["host.example.com"],
                 id="unrelated-name-is-outside"),
    pytest.param(lambda z: make_csr([_parent(z)]), "name-outside-zone", ["{parent}"],
                 id="zone-parent-is-outside"),
    pytest.param(lambda z: make_csr([f"*.{_parent(z)}"]), "name-outside-zone",
                 ["*.{parent}"], id="wildcard-over-the-zone-parent-is-outside"),
    pytest.param(names_csr("{z}.evil.example"), "name-outside-zone", ["{z}.evil.example"],
                 id="zone-as-a-prefix-is-outside"),
    pytest.param(names_csr("not a hostname", san=False), "name-invalid", ["not a hostname"],
                 id="cn-only-csr-with-a-free-text-cn-is-refused"),
    pytest.param(names_csr("host.example.org", san=False), "name-outside-zone",
                 ["host.example.org"], id="cn-only-csr-outside-the-zone-is-refused"),
    pytest.param(names_csr("a_b.{z}", "c d.{z}", "ok.{z}"), "name-invalid",
                 ["a_b.{z}", "c d.{z}"], id="each-invalid-name-gets-a-subproblem"),
    pytest.param(names_csr("a b.{z}", "host.example.com", "ok.{z}"), "names-rejected",
                 ["a b.{z}", "host.example.com"], id="different-broken-rules-are-names-rejected"),
    pytest.param(names_csr(*[f"h{i}.{{z}}" for i in range(11)]), "too-many-names", [],
                 id="eleven-names-over-the-default-limit-are-refused"),
]

STRICT_NAME_CASES = [
    pytest.param(names_csr("*.{z}"), "wildcard-not-allowed", ["*.{z}"],
                 id="wildcard-where-the-product-forbids-it-is-refused"),
    pytest.param(names_csr("a.{z}", "b.{z}", "c.{z}"), "too-many-names", [],
                 id="three-names-over-a-limit-of-two-are-refused"),
]


def _check_subproblems(body: dict, kind: str, offending: list[str], zone: str) -> None:
    expected = [n.format(z=zone, parent=_parent(zone)) for n in offending]
    subproblems = body.get("subproblems", [])
    assert [s["identifier"] for s in subproblems] == [
        {"type": "dns", "value": n} for n in expected]
    kinds = {s["type"] for s in subproblems}
    if kind == "names-rejected":
        assert len(kinds) > 1
    elif subproblems:
        assert kinds == {f"urn:csrproxy:problem:{kind}"}


class TestNameRules:
    @pytest.mark.parametrize(("build", "kind", "offending"), NAME_CASES)
    def test_bad_names_are_refused(self, api, acme_product, build, kind, offending):
        zone = acme_product.zone
        body = assert_refused(post(api, csr_body(build(zone))), 400, kind)
        _check_subproblems(body, kind, offending, zone)

    @pytest.mark.parametrize(("build", "kind", "offending"), STRICT_NAME_CASES)
    def test_product_policy_is_enforced(self, strict_api, strict_product, build, kind,
                                        offending):
        zone = strict_product.zone
        body = assert_refused(post(strict_api, csr_body(build(zone))), 400, kind)
        _check_subproblems(body, kind, offending, zone)


# ---------------------------------------------------------------------------------------------
# A pasted private key: refused, and its text is kept nowhere.



def _rsa_traditional_pem() -> bytes:
    return rsa_key().private_bytes(serialization.Encoding.PEM,
                                   serialization.PrivateFormat.TraditionalOpenSSL,
                                   serialization.NoEncryption())


PRIVATE_KEY_CASES = [
    pytest.param(lambda z, key: csr_body(key), id="private-key-alone-is-refused"),
    pytest.param(lambda z, key: csr_body(key + good_csr(z, key=ec_key())),
                 id="private-key-before-its-csr-is-refused"),
    pytest.param(lambda z, key: csr_body(good_csr(z, key=ec_key()) + key),
                 id="private-key-after-its-csr-is-refused"),
    pytest.param(lambda z, key: as_pkcs10(good_csr(z, key=ec_key()) + key),
                 id="private-key-in-a-raw-pkcs10-body-is-refused"),
    pytest.param(lambda z, key: as_pkcs10("cl\u00e9 priv\u00e9e:\n".encode() + key),
                 id="private-key-with-non-ascii-text-is-refused"),
]


class TestPrivateKeySubmitted:
    @pytest.mark.parametrize("key_kind", ["pkcs8-ec", "traditional-rsa"])
    @pytest.mark.parametrize("build", PRIVATE_KEY_CASES)
    def test_key_is_refused_and_kept_nowhere(self, api, acme_product, caplog, build, key_kind):
        caplog.set_level(logging.DEBUG)
        key = key_pem(ec_key()) if key_kind == "pkcs8-ec" else _rsa_traditional_pem()
        secret_lines = key.decode().splitlines()[1:-1]

        response = post(api, build(acme_product.zone, key))

        assert_refused(response, 400, "private-key-submitted")
        stored, logged = database_text(), caplog.text
        for line in secret_lines:
            assert line not in stored
            assert line not in logged
            assert line.encode() not in response.content


# ---------------------------------------------------------------------------------------------
# Good CSRs are queued (the message is sent on commit, which a ``db`` test never reaches).

def _good(names: list[str], key=None, hash_alg=None, cn: str | None = "", **kwargs):
    return lambda z: make_csr([n.format(z=z) for n in names], key=key() if key else None,
                              hash_alg=hash_alg, cn=cn.format(z=z) if cn else cn, **kwargs)


GOOD_CASES = [
    pytest.param(_good(["host.{z}"], key=lambda: rsa_key(2048)), ["host.{z}"], "rsa2048",
                 id="rsa-2048-is-accepted"),
    pytest.param(_good(["host.{z}"], key=lambda: rsa_key(3072)), ["host.{z}"], "rsa3072",
                 id="rsa-3072-is-accepted"),
    pytest.param(_good(["host.{z}"], key=lambda: rsa_key(4096)), ["host.{z}"], "rsa4096",
                 id="rsa-4096-is-accepted"),
    pytest.param(_good(["host.{z}"], key=lambda: ec_key(ec.SECP256R1)), ["host.{z}"],
                 "ecdsa-p256", id="ecdsa-p256-is-accepted"),
    pytest.param(_good(["host.{z}"], key=lambda: ec_key(ec.SECP384R1)), ["host.{z}"],
                 "ecdsa-p384", id="ecdsa-p384-is-accepted"),
    pytest.param(_good(["host.{z}"], hash_alg=hashes.SHA384()), ["host.{z}"], "ecdsa-p256",
                 id="sha384-signature-is-accepted"),
    pytest.param(_good(["host.{z}"], key=lambda: rsa_key(2048), hash_alg=hashes.SHA512()),
                 ["host.{z}"], "rsa2048", id="sha512-rsa-signature-is-accepted"),
    pytest.param(_good(["Host.{z}", "HOST.{z}", "other.{z}", "host.{z}"], cn="hOsT.{z}"),
                 ["host.{z}", "other.{z}"], "ecdsa-p256",
                 id="mixed-case-names-are-lower-cased-and-deduplicated"),
    pytest.param(_good(["*.{z}", "{z}"]), ["*.{z}", "{z}"], "ecdsa-p256",
                 id="wildcard-and-apex-are-accepted"),
    pytest.param(_good(["host.{z}"], san=False), ["host.{z}"], "ecdsa-p256",
                 id="cn-only-csr-counts-its-cn"),
    pytest.param(_good(["xn--bcher-kva.{z}"]), ["xn--bcher-kva.{z}"], "ecdsa-p256",
                 id="valid-idn-a-label-is-accepted"),
    pytest.param(_good([f"{L63}.{{z}}"], cn=None), [f"{L63}.{{z}}"], "ecdsa-p256",
                 id="label-of-63-bytes-is-accepted"),
    pytest.param(_good(["a.b.c.d.e.{z}"]), ["a.b.c.d.e.{z}"], "ecdsa-p256",
                 id="ten-labels-are-accepted"),
    pytest.param(lambda z: make_csr([_long_name(z, 64)]), [None], "ecdsa-p256",
                 id="cn-of-64-characters-is-accepted"),
    pytest.param(_good([f"h{i}.{{z}}" for i in range(10)]),
                 [f"h{i}.{{z}}" for i in range(10)], "ecdsa-p256",
                 id="ten-names-at-the-default-limit-are-accepted"),
]


class TestAcceptedCsrs:
    @pytest.mark.parametrize(("build", "names", "key_type"), GOOD_CASES)
    def test_good_csr_is_queued(self, api, acme_product, build, names, key_type):
        zone = acme_product.zone
        pem = build(zone)

        response = post(api, csr_body(pem))

        assert response.status_code == 202, response.content
        expected = [_long_name(zone, 64) if n is None else n.format(z=zone) for n in names]
        assert response.json()["names"] == expected
        req = CertificateRequest.objects.get()
        assert (req.names, req.key_type, req.status) == (expected, key_type, "pending")
        assert not ChallengeRecord.objects.exists()  # DNS is the worker's, after commit

    def test_raw_pkcs10_body_with_crlf_is_accepted(self, api, acme_product):
        pem = good_csr(acme_product.zone).replace(b"\n", b"\r\n")
        response = post(api, as_pkcs10(pem))
        assert response.status_code == 202, response.content

    def test_duplicates_collapsing_under_the_limit_are_accepted(self, strict_api, strict_product):
        zone = strict_product.zone
        pem = make_csr([f"a.{zone}", f"A.{zone}", f"b.{zone}"])
        response = post(strict_api, csr_body(pem))
        assert response.status_code == 202, response.content
        assert response.json()["names"] == [f"a.{zone}", f"b.{zone}"]


# ---------------------------------------------------------------------------------------------
# The legacy ``POST /v1/sign`` reads the subject first (token-less, exact-subject rule): the
# same envelope refusals, never a 500.

@pytest.fixture
def legacy_product(acme_tenant, run_id):
    zone = f"legacy.{run_id}.acme.csrproxy.test"
    with provisioned_product(acme_tenant, "legacy", run_id, zone=zone,
                             legacy_subject=f"CN=go.{zone}") as product:
        yield product


LEGACY_CASES = [
    pytest.param(lambda z: key_pem(ec_key()), "private-key-submitted",
                 id="legacy-private-key-is-refused-as-a-leak"),
    pytest.param(lambda z: resign_csr(make_csr([f"go.{z}"], key=ec_key()), ec_key(),
                                      {b"\x55\x04\x03\x0c": b"\x55\x04\x03\x03"}),
                 "csr-malformed", id="legacy-bit-string-cn-is-refused"),
    pytest.param(_version_2, "csr-malformed", id="legacy-csr-version-other-than-v1-is-refused"),
]


class TestLegacyEndpoint:
    @pytest.mark.parametrize(("build", "kind"), LEGACY_CASES)
    def test_bad_csr_is_refused(self, legacy_product, build, kind):
        response = APIClient().post("/v1/sign", build(legacy_product.zone),
                                    content_type="application/x-pem-file")
        assert_refused(response, 400, kind)
