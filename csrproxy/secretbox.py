"""Encryption at rest for secrets the service must be able to read back (ACME keys, EAB keys).

Fernet with keys from ``ENCRYPTION_KEYS`` (newest first), so keys can be rotated: old
ciphertexts still decrypt, new ones use the first key.
"""
from __future__ import annotations

from functools import cache

from cryptography.fernet import Fernet, MultiFernet
from django.conf import settings


@cache
def _box() -> MultiFernet:
    return MultiFernet([Fernet(key.encode()) for key in settings.ENCRYPTION_KEYS])


def encrypt(plaintext: bytes) -> str:
    return _box().encrypt(plaintext).decode()


def decrypt(ciphertext: str) -> bytes:
    return _box().decrypt(ciphertext.encode())
