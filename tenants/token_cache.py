"""Token rows kept per process for ``TOKEN_CACHE_SECONDS``: read by the authentication,
dropped by revocation and deletion."""
from __future__ import annotations

import time

from django.conf import settings

from .models import ApiToken

# Bound of the per-process token cache: past it, the cache starts afresh (only real tokens
# are cached, so reaching it takes that many tokens in use within TOKEN_CACHE_SECONDS).
RECENT_TOKENS_MAX = 10_000
# key id -> (monotonic time read, token row with tenant and product): see token_row.
_recent_tokens: dict[str, tuple[float, ApiToken]] = {}


def token_row(key_id: str) -> ApiToken | None:
    """The token row, read at most once per ``TOKEN_CACHE_SECONDS`` per process.

    The bench measured the token query as the costliest step of a submission after the
    insert itself. The price: a revocation made elsewhere takes effect within that delay.
    Unknown key ids are never cached, so guessing reads the database every time.
    """
    ttl = settings.TOKEN_CACHE_SECONDS
    now = time.monotonic()
    hit = _recent_tokens.get(key_id)
    if hit is not None and now - hit[0] < ttl:
        return hit[1]
    token = ApiToken.objects.select_related("tenant", "product").filter(key_id=key_id).first()
    if token is None:
        return None
    if token.product is not None and token.product.tenant_id == token.tenant_id:
        # Sharing the loaded tenant saves a query in every submission (the quota check
        # reads it). Compared first: a superuser may have moved the product since.
        token.product.tenant = token.tenant
    if ttl > 0:
        if len(_recent_tokens) >= RECENT_TOKENS_MAX:
            _recent_tokens.clear()
        _recent_tokens[key_id] = (now, token)
    return token


def token_forget(key_id: str) -> None:
    """Drop a revoked or deleted token from this process's cache at once (other processes
    drop it within ``TOKEN_CACHE_SECONDS``)."""
    _recent_tokens.pop(key_id, None)
