#!/usr/bin/env python3
"""verify_chain.py CHAIN ROOT NAME -- path-validate a PEM chain for NAME against ROOT; print it."""
import sys

from cryptography import x509
from cryptography.x509.verification import PolicyBuilder, Store


def main(chain_path: str, root_path: str, name: str) -> int:
    certs = x509.load_pem_x509_certificates(open(chain_path, "rb").read())
    root = x509.load_pem_x509_certificate(open(root_path, "rb").read())
    verifier = PolicyBuilder().store(Store([root])).build_server_verifier(x509.DNSName(name))
    verifier.verify(certs[0], certs[1:])
    leaf = certs[0]
    print(f"verified against the CA's root: {chain_path}")
    print(f"  subject: {leaf.subject.rfc4514_string()}")
    print(f"  issuer:  {leaf.issuer.rfc4514_string()}")
    print(f"  expires: {leaf.not_valid_after_utc:%Y-%m-%d %H:%M:%S} UTC")
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:4]))
