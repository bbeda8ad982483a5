"""CSR policy: what CSR Proxy accepts, with one clear problem per broken rule.

``cryptography`` parses; it does not judge (it takes the first of two PEM blocks, ignores
text around it and accepts DNS names with spaces or NUL bytes). Every rule here is ours.
"""
from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

import idna
from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtensionOID, NameOID, SignatureAlgorithmOID

from csrproxy.problems import Problem

MAX_CSR_BYTES = 16 * 1024
MAX_LABELS = 10
MAX_CN_CHARS = 64  # RFC 5280's ub-common-name; ACME CAs refuse a longer CN at finalization
ALLOWED_RSA_BITS = (2048, 3072, 4096)
ALLOWED_CURVES = {"secp256r1": "ecdsa-p256", "secp384r1": "ecdsa-p384"}
# PKCS#1 v1.5 or ECDSA with SHA-2, matching the key: what ACME CAs accept (not RSA-PSS).
ALLOWED_SIGNATURES = {
    SignatureAlgorithmOID.RSA_WITH_SHA256: rsa.RSAPublicKey,
    SignatureAlgorithmOID.RSA_WITH_SHA384: rsa.RSAPublicKey,
    SignatureAlgorithmOID.RSA_WITH_SHA512: rsa.RSAPublicKey,
    SignatureAlgorithmOID.ECDSA_WITH_SHA256: ec.EllipticCurvePublicKey,
    SignatureAlgorithmOID.ECDSA_WITH_SHA384: ec.EllipticCurvePublicKey,
    SignatureAlgorithmOID.ECDSA_WITH_SHA512: ec.EllipticCurvePublicKey,
}
_PEM_CSR = re.compile(
    r"\A\s*-----BEGIN (NEW )?CERTIFICATE REQUEST-----\r?\n[A-Za-z0-9+/=\r\n]+"
    r"-----END (NEW )?CERTIFICATE REQUEST-----\s*\Z"
)
_LDH_LABEL = re.compile(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?")  # used with fullmatch
# RFC 5890: TLS Feature status_request (OCSP Must-Staple) is value 5.
_MUST_STAPLE = 5


@dataclass(frozen=True)
class ParsedCsr:
    pem: str
    names: list[str]
    key_type: str
    public_key_sha256: str
    subject: str


def csr_parse(data: bytes | str, *, zone: str, allow_wildcard: bool, max_names: int) -> ParsedCsr:
    """Check a submitted CSR against the policy and a product's zone; raise Problem if broken."""
    # surrogatepass: a lone surrogate from JSON must end as "not ASCII", not as a crash.
    raw = data.encode("utf-8", "surrogatepass") if isinstance(data, str) else data
    if len(raw) > MAX_CSR_BYTES:
        raise Problem("csr-too-large", "CSR too large",
                      f"A CSR is at most {MAX_CSR_BYTES} bytes.", status=413)
    _refuse_private_key(raw)
    try:
        text = raw.decode("ascii")
    except UnicodeDecodeError:
        raise Problem("csr-malformed", "Malformed CSR", "The CSR must be PEM text.") from None
    if not _PEM_CSR.match(text):
        raise Problem("csr-malformed", "Malformed CSR",
                      "Expected exactly one PEM 'CERTIFICATE REQUEST' block and nothing else.")
    try:
        csr = x509.load_pem_x509_csr(raw)
    except (ValueError, x509.InvalidVersion):
        raise Problem("csr-malformed", "Malformed CSR", "The CSR could not be parsed.") from None

    key_type = _check_key(csr)
    _check_signature(csr)
    _check_extensions(csr)
    subject = _read_subject(csr)
    names = _check_names(csr, subject, zone=zone, allow_wildcard=allow_wildcard,
                         max_names=max_names)
    spki = csr.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return ParsedCsr(
        pem=csr.public_bytes(serialization.Encoding.PEM).decode(),
        names=names,
        key_type=key_type,
        public_key_sha256=hashlib.sha256(spki).hexdigest(),
        subject=subject.rfc4514_string(),
    )


def csr_subject(data: bytes | str) -> str:
    """The CSR's subject as RFC 4514 text (for the legacy endpoint's exact-subject rule)."""
    raw = data.encode("utf-8", "surrogatepass") if isinstance(data, str) else data
    _refuse_private_key(raw)
    try:
        return x509.load_pem_x509_csr(raw[:MAX_CSR_BYTES]).subject.rfc4514_string()
    except (ValueError, TypeError, x509.InvalidVersion):  # TypeError: e.g. a BIT STRING CN
        raise Problem("csr-malformed", "Malformed CSR", "The CSR could not be parsed.") from None


def _refuse_private_key(raw: bytes) -> None:
    """Looked for before anything else can refuse the body, so the caller learns of the leak."""
    if b"PRIVATE KEY" in raw:
        # Never echo or keep it: the caller just leaked its key to us.
        raise Problem("private-key-submitted", "Private key submitted",
                      "Send only the CSR. The private key must never leave the installation; "
                      "generate a new key, this one is no longer secret.")


def _check_key(csr: x509.CertificateSigningRequest) -> str:
    try:
        key = csr.public_key()
    except (ValueError, UnsupportedAlgorithm):
        raise Problem("key-unsupported", "Unsupported key",
                      "The CSR's public key type is not supported.") from None
    if isinstance(key, rsa.RSAPublicKey):
        if key.key_size not in ALLOWED_RSA_BITS or key.public_numbers().e != 65537:
            raise Problem("key-unsupported", "Unsupported key",
                          "RSA keys must be 2048, 3072 or 4096 bits with exponent 65537.")
        return f"rsa{key.key_size}"
    if isinstance(key, ec.EllipticCurvePublicKey) and key.curve.name in ALLOWED_CURVES:
        return ALLOWED_CURVES[key.curve.name]
    raise Problem("key-unsupported", "Unsupported key",
                  "Keys must be RSA 2048/3072/4096 or ECDSA P-256/P-384.")


def _check_signature(csr: x509.CertificateSigningRequest) -> None:
    key_class = ALLOWED_SIGNATURES.get(csr.signature_algorithm_oid)
    if key_class is None or not isinstance(csr.public_key(), key_class):
        raise Problem("csr-signature-algorithm", "Unsupported signature algorithm",
                      "The CSR must be signed with SHA-256, SHA-384 or SHA-512: RSA PKCS#1 v1.5 "
                      "for an RSA key (not RSA-PSS), ECDSA for an EC key.")
    try:
        valid = csr.is_signature_valid
    except (ValueError, UnsupportedAlgorithm):
        valid = False
    if not valid:
        raise Problem("csr-bad-signature", "Bad CSR signature",
                      "The CSR's signature does not verify: it was not signed by its own key.")


def _check_extensions(csr: x509.CertificateSigningRequest) -> None:
    try:
        extensions = csr.extensions
    except (ValueError, x509.DuplicateExtension, x509.UnsupportedGeneralNameType):
        raise Problem("csr-malformed", "Malformed CSR",
                      "The CSR's extensions could not be parsed.") from None
    for ext in extensions:
        value = ext.value
        if isinstance(value, x509.TLSFeature) and any(f.value == _MUST_STAPLE for f in value):
            raise Problem("must-staple", "OCSP Must-Staple not supported",
                          "Remove the TLS Feature (Must-Staple) extension.")
        if isinstance(value, x509.BasicConstraints) and value.ca:
            raise Problem("ca-requested", "CA certificate requested",
                          "Only end-entity certificates are issued (remove CA:TRUE).")
        if isinstance(value, x509.KeyUsage) and value.key_cert_sign:
            raise Problem("ca-requested", "CA certificate requested",
                          "Only end-entity certificates are issued (remove keyCertSign).")


def _read_subject(csr: x509.CertificateSigningRequest) -> x509.Name:
    try:
        return csr.subject
    except (ValueError, TypeError):  # e.g. a CN that is a BIT STRING, or not UTF-8
        raise Problem("subject-invalid", "Unreadable subject",
                      "The CSR's subject could not be read: its attributes (the CN among them) "
                      "must be text strings.") from None


def _check_names(
    csr: x509.CertificateSigningRequest, subject: x509.Name, *, zone: str, allow_wildcard: bool,
    max_names: int,
) -> list[str]:
    try:
        san = csr.extensions.get_extension_for_oid(ExtensionOID.SUBJECT_ALTERNATIVE_NAME).value
    except x509.ExtensionNotFound:
        san = None
    if san is not None and any(not isinstance(g, x509.DNSName) for g in san):
        raise Problem("san-type-unsupported", "Unsupported name type",
                      "Only DNS names are allowed in the subjectAltName (no IP, email or URI).")
    raw_names = [g.value for g in san] if san is not None else []
    common_names = subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    if len(common_names) > 1:
        raise Problem("cn-invalid", "Several common names", "A CSR may carry one CN at most.")
    cn = common_names[0].value if common_names else None
    if isinstance(cn, bytes):
        raise Problem("cn-invalid", "Invalid common name", "The CN must be text.")
    if cn is not None and len(cn) > MAX_CN_CHARS:
        raise Problem("cn-invalid", "Common name too long",
                      f"A CN is at most {MAX_CN_CHARS} characters; leave the CN out and put "
                      "the name in the subjectAltName only.")
    if cn is not None and not raw_names:
        raw_names = [cn]  # a CN-only CSR, as existing /v1/sign clients send: its CN is its name
    if not raw_names:
        raise Problem("no-names", "No names", "The CSR names no DNS name (no SAN, no CN).")

    names: list[str] = []
    subproblems = []
    for raw in raw_names:
        reason = _name_problem(raw, zone=zone, allow_wildcard=allow_wildcard)
        if reason:
            kind, detail = reason
            subproblems.append({"type": f"urn:csrproxy:problem:{kind}", "detail": detail,
                                "identifier": {"type": "dns", "value": raw}})
        elif raw.lower() not in names:
            names.append(raw.lower())
    if subproblems:
        kinds = {s["type"] for s in subproblems}
        kind = "names-rejected"
        if len(kinds) == 1:
            kind = kinds.pop().removeprefix("urn:csrproxy:problem:")
        raise Problem(kind, "Names refused",
                      f"{len(subproblems)} of the CSR's names break the policy; see subproblems.",
                      subproblems=subproblems)
    if cn is not None and cn.lower() not in names:
        raise Problem("cn-not-in-san", "CN not among the names",
                      "The CN must also be one of the subjectAltName DNS names.")
    if len(names) > max_names:
        raise Problem("too-many-names", "Too many names",
                      f"This product allows at most {max_names} names per CSR.")
    return names


def _name_problem(raw: str, *, zone: str, allow_wildcard: bool) -> tuple[str, str] | None:
    if not raw.isascii():
        return "name-invalid", "Names must be ASCII; write IDNs as xn-- A-labels."
    if raw.endswith("."):
        return "name-invalid", "Names must not end with a dot."
    name = raw.lower()
    if len(name) > 253:
        return "name-invalid", "Names are at most 253 characters."
    labels = name.split(".")
    if len(labels) > MAX_LABELS:  # a wildcard counts: it is a label of the name
        return "name-invalid", f"Names have at most {MAX_LABELS} labels."
    if labels[0] == "*":
        if not allow_wildcard:
            return "wildcard-not-allowed", "This product does not allow wildcard names."
        labels = labels[1:]
        if not labels:
            return "name-invalid", "A wildcard stands for one label of a name below it."
    for label in labels:
        if not _LDH_LABEL.fullmatch(label):  # not match(): "$" would accept a final newline
            return "name-invalid", (
                f"Label {label!r} is not a valid hostname label (letters, digits and inner "
                "hyphens, 1-63 characters; a wildcard only as the whole first label)."
            )
        if label[2:4] == "--":
            if not label.startswith("xn--"):
                return "name-invalid", f"Label {label!r} has hyphens in positions 3-4."
            try:  # valid IDNA 2008, and the one canonical A-label of its U-label
                canonical = idna.encode(idna.decode(label)) == label.encode()
            except UnicodeError:  # idna.IDNAError is one
                canonical = False
            if not canonical:
                return "name-invalid", f"Label {label!r} is not a valid IDN A-label."
    base = ".".join(labels)
    if not (base == zone or base.endswith("." + zone)):
        return "name-outside-zone", f"Names must lie within this product's zone {zone}."
    return None
