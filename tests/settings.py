"""Test settings: the real settings, with a queue of their own so that a running demo worker
never takes the tests' messages (and the tests' worker never takes the demo's)."""
import os

os.environ.setdefault("DRAMATIQ_QUEUE", "csrproxy-test")

from csrproxy.settings import *  # noqa: E402,F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # fast test users
TOKEN_CACHE_SECONDS = 0  # revocations take effect at once; tests/test_tokens.py covers the cache
