"""Looking for secrets in the database the blunt way: every row of every table, as text."""
from __future__ import annotations

from django.db import connection

from tenants.tokens import KEY_ID_LENGTH, PREFIX


def database_text() -> str:
    chunks = []
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names():
            cursor.execute(f'SELECT * FROM "{table}"')
            chunks.extend(repr(row) for row in cursor.fetchall())
    return "\n".join(chunks)


def token_secret_part(token: str) -> str:
    """The secret after ``csrp_<key id>_``. The secret is URL-safe base64 and may itself hold
    underscores, so it is cut by position, never at the last underscore."""
    secret = token[len(PREFIX) + KEY_ID_LENGTH + 1:]
    assert len(secret) >= 40, token
    return secret
