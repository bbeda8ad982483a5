"""API token format and digest.

A token reads ``csrp_<key id>_<secret>``. The key id (public, 12 characters) finds the row;
the stored digest is HMAC-SHA256 keyed with ``TOKEN_PEPPER`` over the whole token, so the
database alone can neither reveal nor brute-force a token. The ``csrp_`` prefix lets secret
scanners recognise a leaked token.
"""
from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

from django.conf import settings

PREFIX = "csrp_"
KEY_ID_LENGTH = 12


@dataclass(frozen=True)
class NewToken:
    key_id: str
    digest: str
    plaintext: str


def token_digest(plaintext: str) -> str:
    return hmac.new(settings.TOKEN_PEPPER.encode(), plaintext.encode(), hashlib.sha256).hexdigest()


def token_generate() -> NewToken:
    key_id = secrets.token_hex(KEY_ID_LENGTH // 2)
    plaintext = f"{PREFIX}{key_id}_{secrets.token_urlsafe(32)}"
    return NewToken(key_id=key_id, digest=token_digest(plaintext), plaintext=plaintext)


def token_key_id(plaintext: str) -> str | None:
    """The key id of a well-formed token, or None."""
    if not plaintext.startswith(PREFIX):
        return None
    key_id, sep, secret = plaintext[len(PREFIX):].partition("_")
    if len(key_id) != KEY_ID_LENGTH or not sep or not secret:
        return None
    return key_id


def token_matches(plaintext: str, digest: str) -> bool:
    return hmac.compare_digest(token_digest(plaintext), digest)
