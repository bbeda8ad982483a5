#!/usr/bin/env python3
"""csrproxy-client: get a certificate for this installation without its key leaving it.

Generates a private key locally (it is never sent), builds a CSR for the given names,
submits it to CSR Proxy, shows progress while the certificate is issued, and writes the key
and the PEM chain to files. Needs only Python 3.9+ and ``cryptography``.

    csrproxy_client.py --url http://127.0.0.1:8000 --token csrp_... \
        --name host1.app.acme.csrproxy.test --key host1.key --chain host1.pem
The token can also come from the CSRPROXY_TOKEN environment variable.
"""
from __future__ import annotations

import argparse
import json
import os
import ssl
import sys
import time
import urllib.error
import urllib.request

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID


def generate_key(kind: str):
    if kind == "rsa":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return ec.generate_private_key(ec.SECP256R1())


def build_csr(key, names: list[str]) -> bytes:
    builder = x509.CertificateSigningRequestBuilder().subject_name(
        x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0].removeprefix("*."))])
    )
    sans = list(dict.fromkeys(names + [names[0].removeprefix("*.")]))
    builder = builder.add_extension(
        x509.SubjectAlternativeName([x509.DNSName(n) for n in sans]), critical=False
    )
    return builder.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)


class Api:
    def __init__(self, url: str, token: str, cafile: str | None) -> None:
        self.url = url.rstrip("/")
        self.token = token
        self.context = ssl.create_default_context(cafile=cafile) if cafile else None

    def call(self, method: str, path: str, body: dict | None = None) -> tuple[int, dict, dict]:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.url + path, data=data, method=method, headers={
            "Authorization": f"Bearer {self.token}", "Content-Type": "application/json",
            "Accept": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=30, context=self.context) as response:
                return response.status, dict(response.headers), json.loads(response.read())
        except urllib.error.HTTPError as error:
            try:
                problem = json.loads(error.read())
            except ValueError:
                problem = {"detail": error.reason}
            return error.code, dict(error.headers), problem


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default=os.environ.get("CSRPROXY_URL", "http://127.0.0.1:8000"))
    parser.add_argument("--token", default=os.environ.get("CSRPROXY_TOKEN"))
    parser.add_argument("--name", action="append", required=True, dest="names",
                        help="DNS name for the certificate (repeat for more)")
    parser.add_argument("--key", required=True, help="where to write the new private key")
    parser.add_argument("--chain", required=True, help="where to write the PEM chain")
    parser.add_argument("--key-type", choices=["ecdsa", "rsa"], default="ecdsa")
    parser.add_argument("--cafile", help="CA bundle for an https --url with a private CA")
    parser.add_argument("--timeout", type=float, default=300)
    args = parser.parse_args(argv)
    if not args.token:
        parser.error("--token or CSRPROXY_TOKEN is required")

    key = generate_key(args.key_type)
    # The key is written first, readable only by us, and never sent anywhere.
    fd = os.open(args.key, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()))
    api = Api(args.url, args.token, args.cafile)
    status, _, body = api.call("POST", "/api/v1/certificates/",
                               {"csr": build_csr(key, args.names).decode()})
    if status not in (200, 202):
        print(f"refused ({status}): {body.get('title')}: {body.get('detail')}", file=sys.stderr)
        for sub in body.get("subproblems", []):
            print(f"  {sub.get('identifier', {}).get('value', '')}: {sub.get('detail')}",
                  file=sys.stderr)
        return 2
    request_id = body["id"]
    print(f"request {request_id} accepted for {', '.join(body['names'])}", file=sys.stderr)
    deadline, delay, last = time.monotonic() + args.timeout, 0.2, None
    while body["status"] not in ("valid", "invalid"):
        if time.monotonic() > deadline:
            print(f"still {body['status']} after {args.timeout:.0f} s; request {request_id}",
                  file=sys.stderr)
            return 3
        time.sleep(delay)
        delay = min(delay * 1.5, 5)
        status, _, body = api.call("GET", f"/api/v1/certificates/{request_id}/")
        if status != 200:
            print(f"status check failed ({status}): {body.get('detail')}", file=sys.stderr)
            continue
        if body["status"] != last:
            print(f"  {body['status']}", file=sys.stderr)
            last = body["status"]
    if body["status"] == "invalid":
        error = body.get("error") or {}
        print(f"issuance failed: {error.get('detail') or error.get('type')}", file=sys.stderr)
        return 1
    with open(args.chain, "w") as f:
        f.write(body["certificate"])
    leaf = x509.load_pem_x509_certificate(body["certificate"].encode())
    print(f"certificate written to {args.chain} (key in {args.key})")
    print(f"  subject: {leaf.subject.rfc4514_string()}")
    print(f"  issuer:  {leaf.issuer.rfc4514_string()}")
    print(f"  expires: {leaf.not_valid_after_utc:%Y-%m-%d %H:%M:%S} UTC")
    return 0


if __name__ == "__main__":
    sys.exit(main())
