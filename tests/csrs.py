"""Building keys and CSRs for tests, the way installations do."""
from __future__ import annotations

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


def public_key_der(key) -> bytes:
    return key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
