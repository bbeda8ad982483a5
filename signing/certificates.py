"""Checks on an issued chain before it is delivered: the client's key, the client's names."""
from __future__ import annotations

import hashlib
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization


class ChainMismatch(Exception):
    """The CA's certificate does not belong to this request: never deliver it."""


def chain_check(chain_pem: str, *, public_key_sha256: str, names: list[str]) -> dict[str, Any]:
    """Verify the chain links and that its leaf carries the CSR's key and names.

    Returns the leaf's facts for the Certificate row.
    """
    try:
        certs = x509.load_pem_x509_certificates(chain_pem.encode())
    except ValueError:
        raise ChainMismatch("The CA's chain could not be parsed.") from None
    leaf = certs[0]
    spki = leaf.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    if hashlib.sha256(spki).hexdigest() != public_key_sha256:
        raise ChainMismatch("The issued certificate carries another public key than the CSR.")
    try:
        san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        leaf_names = {n.lower() for n in san.get_values_for_type(x509.DNSName)}
    except x509.ExtensionNotFound:
        leaf_names = set()
    if leaf_names != set(names):
        raise ChainMismatch(
            f"The issued certificate names {sorted(leaf_names)}, the CSR {sorted(names)}."
        )
    for child, parent in zip(certs, certs[1:], strict=False):
        try:
            child.verify_directly_issued_by(parent)
        except (ValueError, TypeError, InvalidSignature) as exc:
            raise ChainMismatch(f"The chain does not link up: {exc}") from None
    return {
        "serial": format(leaf.serial_number, "x"),
        "subject": leaf.subject.rfc4514_string(),
        "issuer": leaf.issuer.rfc4514_string(),
        "not_before": leaf.not_valid_before_utc,
        "not_after": leaf.not_valid_after_utc,
    }
