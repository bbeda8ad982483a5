#!/usr/bin/env bash
# write-env.sh -- write .env (read by manage.py) from .stack/stack.env plus fresh secrets.
# An existing .env keeps its secrets; the stack's values are refreshed.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
[ -s .stack/stack.env ] || die "run scripts/stack-up.sh first"
keep() { grep -E "^$1=" .env 2>/dev/null | head -1 | cut -d= -f2- || true; }
secret_key=$(keep SECRET_KEY); [ -n "$secret_key" ] || secret_key=$(openssl rand -hex 32)
pepper=$(keep TOKEN_PEPPER); [ -n "$pepper" ] || pepper=$(openssl rand -hex 32)
enc=$(keep ENCRYPTION_KEYS); [ -n "$enc" ] || enc=$(openssl rand -base64 32 | tr '+/' '-_')
umask 077
{
  echo "# written by scripts/write-env.sh (make demo); secrets are generated once and kept"
  echo "DEBUG=false"
  echo "SECRET_KEY=$secret_key"
  echo "TOKEN_PEPPER=$pepper"
  echo "ENCRYPTION_KEYS=$enc"
  echo "ALLOWED_HOSTS=127.0.0.1,localhost"
  echo "CSRPROXY_BASE_ZONE=csrproxy.test"
  grep -v '^#' .stack/stack.env
} > .env.tmp
mv .env.tmp .env
log "wrote .env"
