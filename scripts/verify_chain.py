#!/usr/bin/env python3
"""verify_chain.py CHAIN ROOT NAME -- path-validate a PEM chain for NAME against ROOT."""
import sys

from cryptography import x509
from cryptography.x509.verification import PolicyBuilder, Store


def main(chain_path: str, root_path: str, name: str) -> int:
    certs = x509.load_pem_x509_certificates(open(chain_path, "rb").read())
    root = x509.load_pem_x509_certificate(open(root_path, "rb").read())
    verifier = PolicyBuilder().store(Store([root])).build_server_verifier(x509.DNSName(name))
    verifier.verify(certs[0], certs[1:])
    root_name = root.subject.rfc4514_string()
    print(f"  verified: path-validated for {name} up to the root {root_name}")
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:4]))
