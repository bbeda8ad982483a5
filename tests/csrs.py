"""Building keys and CSRs for tests, the way installations do."""
from __future__ import annotations

import base64
import subprocess
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID


def ec_key():
    return ec.generate_private_key(ec.SECP256R1())


def rsa_key(bits: int = 2048):
    return rsa.generate_private_key(public_exponent=65537, key_size=bits)


def make_csr(names: list[str], key=None, cn: str | None = "", san: bool = True,
             hash_alg=None, extensions: list[tuple[x509.ExtensionType, bool]] = ()) -> bytes:
    """A PEM CSR. ``cn=""`` uses the first name (without ``*.``); ``cn=None`` omits the CN."""
    key = key or ec_key()
    if cn == "":
        cn = names[0].removeprefix("*.") if names else None
    attrs = [x509.NameAttribute(NameOID.COMMON_NAME, cn)] if cn else []
    builder = x509.CertificateSigningRequestBuilder().subject_name(x509.Name(attrs))
    if san and names:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), critical=False
        )
    for ext, critical in extensions:
        builder = builder.add_extension(ext, critical=critical)
    return builder.sign(key, hash_alg or hashes.SHA256()).public_bytes(serialization.Encoding.PEM)


def self_signed_certificate(key, names: list[str], days: int = 90) -> str:
    """A PEM certificate for ``key`` and ``names``: what a CA would hand back, minus the CA."""
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])])
    now = datetime.now(UTC)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now).not_valid_after(now + timedelta(days=days))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in names]),
                           critical=False)
            .sign(key, hashes.SHA256()))
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def public_key_der(key) -> bytes:
    return key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


# Cases ``cryptography`` will not build (non-ASCII names, odd subject encodings, broken
# signatures) are made by editing a built CSR's DER and, where it must still verify, signing
# the edited request info again.

ECDSA_WITH_SHA256 = bytes.fromhex("300a06082a8648ce3d040302")
SHA256_WITH_RSA = bytes.fromhex("300d06092a864886f70d01010b0500")


def der_tlv(tag: int, content: bytes) -> bytes:
    """One DER element: tag, definite length, content."""
    n = len(content)
    if n < 0x80:
        return bytes([tag, n]) + content
    size = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(size)]) + size + content


def csr_der(pem: bytes) -> bytes:
    return x509.load_pem_x509_csr(pem).public_bytes(serialization.Encoding.DER)


def der_to_pem(der: bytes, label: str = "CERTIFICATE REQUEST") -> bytes:
    body = base64.encodebytes(der).decode().replace("\n", "")
    lines = [body[i:i + 64] for i in range(0, len(body), 64)]
    return f"-----BEGIN {label}-----\n" + "\n".join(lines) + f"\n-----END {label}-----\n"


def resign_csr(pem: bytes, key: ec.EllipticCurvePrivateKey, edits: dict[bytes, bytes],
               algorithm: bytes = ECDSA_WITH_SHA256) -> bytes:
    """Replace bytes in the CSR's request info (same length each) and sign it again.

    The result verifies (for the default ``algorithm``), so it reaches the checks that come
    after the signature's.
    """
    info = x509.load_pem_x509_csr(pem).tbs_certrequest_bytes
    for old, new in edits.items():
        assert len(old) == len(new) and old in info, (old, new)
        info = info.replace(old, new)
    signature = key.sign(info, ec.ECDSA(hashes.SHA256()))
    der = der_tlv(0x30, info + algorithm + der_tlv(0x03, b"\0" + signature))
    return der_to_pem(der).encode()


def edit_csr(pem: bytes, edits: dict[bytes, bytes]) -> bytes:
    """Replace bytes anywhere in the CSR's DER (same length each), without signing again."""
    der = csr_der(pem)
    for old, new in edits.items():
        assert len(old) == len(new) and old in der, (old, new)
        der = der.replace(old, new)
    return der_to_pem(der).encode()


def flip_last_signature_byte(pem: bytes) -> bytes:
    der = csr_der(pem)
    return der_to_pem(der[:-1] + bytes([der[-1] ^ 0x01])).encode()


def openssl(*args: str, stdin: bytes | None = None) -> bytes:
    """Run the ``openssl`` command line; its standard output."""
    return subprocess.run(["openssl", *args], input=stdin, capture_output=True,
                          check=True).stdout


def openssl_csr(key_pem: bytes, subject: str, names: tuple[str, ...] | list[str] = (),
                digest: str = "sha256", extra: tuple[str, ...] = ()) -> bytes:
    """A CSR signed by ``openssl req`` (for digests and keys ``cryptography`` won't sign)."""
    with tempfile.TemporaryDirectory() as tmp:
        key_path = Path(tmp, "key.pem")
        key_path.write_bytes(key_pem)
        args = ["req", "-new", "-key", str(key_path), "-subj", subject, f"-{digest}", *extra]
        if names:
            args += ["-addext", "subjectAltName=" + ",".join(f"DNS:{n}" for n in names)]
        return openssl(*args)


def key_pem(key) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


_OID_COMMON_NAME = bytes.fromhex("0603550403")
_OID_EXTENSION_REQUEST = bytes.fromhex("06092a864886f70d01090e")
_OID_SUBJECT_ALT_NAME = bytes.fromhex("0603551d11")


def csr_with_dns_bytes(names: list[bytes], key: ec.EllipticCurvePrivateKey | None = None,
                       cn: bytes | None = None) -> bytes:
    """A verifying CSR whose SAN dNSNames hold exactly ``names``: any bytes, which
    ``cryptography``'s builder refuses (non-ASCII) — the DER is written here by hand."""
    key = key or ec_key()
    subject = b""
    if cn is not None:
        subject = der_tlv(0x31, der_tlv(0x30, _OID_COMMON_NAME + der_tlv(0x0C, cn)))
    san = der_tlv(0x30, b"".join(der_tlv(0x82, n) for n in names))
    extension = der_tlv(0x30, _OID_SUBJECT_ALT_NAME + der_tlv(0x04, san))
    attribute = der_tlv(0x30, _OID_EXTENSION_REQUEST + der_tlv(0x31, der_tlv(0x30, extension)))
    info = der_tlv(0x30, b"\x02\x01\x00" + der_tlv(0x30, subject) + public_key_der(key)
                   + der_tlv(0xA0, attribute))
    signature = key.sign(info, ec.ECDSA(hashes.SHA256()))
    return der_to_pem(der_tlv(0x30, info + ECDSA_WITH_SHA256
                              + der_tlv(0x03, b"\0" + signature))).encode()
