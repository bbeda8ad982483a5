"""DRF authentication: ``Authorization: Bearer <token>``.

Unknown, wrong, revoked and expired tokens all raise the same AuthenticationFailed, which the
problem handler turns into one identical 401 body.
"""
from __future__ import annotations

from datetime import timedelta

from django.utils import timezone
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework.authentication import BaseAuthentication, get_authorization_header
from rest_framework.exceptions import AuthenticationFailed

from .models import ApiToken
from .token_cache import token_row
from .tokens import token_key_id, token_matches

# last_used_at is written at most this often per token: no write on every request.
LAST_USED_RESOLUTION = timedelta(minutes=1)


class TokenPrincipal:
    """The authenticated caller: a token, its tenant and (for client tokens) its product."""

    is_authenticated = True
    is_anonymous = False

    def __init__(self, token: ApiToken) -> None:
        self.token = token
        self.tenant = token.tenant
        self.product = token.product

    def __str__(self) -> str:
        return f"token {self.token.key_id}"


class BearerTokenAuthentication(BaseAuthentication):
    def authenticate(self, request):
        header = get_authorization_header(request).split()
        if not header or header[0].lower() != b"bearer":
            return None
        if len(header) != 2:
            raise AuthenticationFailed()
        try:
            plaintext = header[1].decode("ascii")
        except UnicodeDecodeError:
            raise AuthenticationFailed() from None
        token = self._usable_token(plaintext)
        if token is None:
            raise AuthenticationFailed()
        now = timezone.now()
        if token.last_used_at is None or now - token.last_used_at > LAST_USED_RESOLUTION:
            ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
            token.last_used_at = now  # the cached row too, or every request would write
        return TokenPrincipal(token), token

    def authenticate_header(self, request) -> str:
        return "Bearer"

    @staticmethod
    def _usable_token(plaintext: str) -> ApiToken | None:
        key_id = token_key_id(plaintext)
        if key_id is None:
            return None
        token = token_row(key_id)
        # The digest and the expiry are checked on every request, cached row or not.
        if token is None or not token_matches(plaintext, token.digest) or not token.is_usable():
            return None
        return token


class BearerTokenScheme(OpenApiAuthenticationExtension):
    """Documents the bearer token in the OpenAPI schema."""

    target_class = BearerTokenAuthentication
    name = "bearerToken"

    def get_security_definition(self, auto_schema):
        return {"type": "http", "scheme": "bearer",
                "description": "A product token (csrp_...) from create_token or the admin."}
