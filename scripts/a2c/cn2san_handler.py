"""acme2certifier CA handler: its openssl handler, but a CN-only CSR's CN becomes the SAN.

acme2certifier's stock openssl handler copies only the CSR's subjectAltName, so a CN-only
CSR would give a leaf without any SAN, which browsers reject. Let's Encrypt puts the CN into
the SAN; this handler does the same, so the test CA behaves like the production one.
"""
from acme2certifier.cahandlers.openssl_ca_handler import CAhandler as OpensslCAhandler
from cryptography import x509
from cryptography.x509.oid import ExtensionOID, NameOID


class CAhandler(OpensslCAhandler):
    def _cert_extension_apply(self, builder, ca_cert, req):
        builder = super()._cert_extension_apply(builder, ca_cert, req)
        if req is None:
            return builder
        try:
            req.extensions.get_extension_for_oid(ExtensionOID.SUBJECT_ALTERNATIVE_NAME)
            return builder
        except x509.ExtensionNotFound:
            pass
        common_names = req.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        if not common_names:
            return builder
        san = x509.SubjectAlternativeName([x509.DNSName(common_names[0].value.lower())])
        return builder.add_extension(san, critical=False)
