#!/usr/bin/env bash
# demo.sh -- bring the whole stack up, run the service on http://127.0.0.1:8000/ and sign one
# certificate end to end with the installation client. Leaves everything running: `make stop`.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
PY=.venv/bin/python
RUN=.run
mkdir -p "$RUN"

scripts/stack-up.sh
scripts/write-env.sh
$PY manage.py migrate --noinput -v 0
$PY manage.py createcachetable
$PY manage.py collectstatic --noinput -v 0

# Operator (superuser) and a demo publisher with a product and a client token.
if [ ! -s .stack/admin-password ]; then
  (umask 077; openssl rand -hex 12 > .stack/admin-password)
fi
ADMIN_PASSWORD=$(cat .stack/admin-password)
DJANGO_SUPERUSER_PASSWORD=$ADMIN_PASSWORD $PY manage.py shell -v 0 -c "
import os
from django.contrib.auth.models import User
u, _ = User.objects.get_or_create(username='admin', defaults={'is_staff': True, 'is_superuser': True})
u.set_password(os.environ['DJANGO_SUPERUSER_PASSWORD']); u.save()
"
$PY manage.py shell -v 0 -c "from tenants.models import Tenant; import sys; sys.exit(0 if Tenant.objects.filter(slug='demo').exists() else 1)" \
  || $PY manage.py create_tenant demo --name "Demo Publisher" >/dev/null
$PY manage.py shell -v 0 -c "from tenants.models import Product; import sys; sys.exit(0 if Product.objects.filter(slug='shop', tenant__slug='demo').exists() else 1)" \
  || $PY manage.py create_product demo shop --allow-wildcard >/dev/null 2>&1
[ -s .stack/demo-token ] || (umask 077; $PY manage.py create_token demo shop --name demo 2>/dev/null > .stack/demo-token)

start() { # start NAME CMD...
  local name=$1; shift
  if alive "$RUN/$name.pid"; then log "$name already running (pid $(cat "$RUN/$name.pid"))"; return; fi
  nohup "$@" </dev/null >>"$RUN/$name.log" 2>&1 &
  echo $! > "$RUN/$name.pid"
  log "started $name (pid $!, log $RUN/$name.log)"
}
start web .venv/bin/gunicorn csrproxy.wsgi --bind 127.0.0.1:8000 --workers 2 --threads 8 --access-logfile -
start worker $PY manage.py run_worker --processes 1 --threads 8
start sweeper $PY manage.py run_sweeper
wait_for 30 curl -fsS http://127.0.0.1:8000/healthz || die "the web service did not come up (see $RUN/web.log)"

NAME="install-$(openssl rand -hex 3).shop.demo.csrproxy.test"
OUT=.stack/demo-out; mkdir -p "$OUT"
echo
echo "Signing a certificate for $NAME with client/csrproxy_client.py (the key stays here):"
$PY client/csrproxy_client.py --url http://127.0.0.1:8000 --token "$(cat .stack/demo-token)" \
  --name "$NAME" --key "$OUT/$NAME.key" --chain "$OUT/$NAME.pem"
# Verify the chain against Pebble's root, as a browser trusting that root would.
. .stack/stack.env 2>/dev/null || true
curl -fsS --cacert .stack/tls/ca.pem "$PEBBLE_MGMT_URL/roots/0" > "$OUT/pebble-root.pem"
$PY scripts/verify_chain.py "$OUT/$NAME.pem" "$OUT/pebble-root.pem" "$NAME"

cat <<MSG

CSR Proxy is running:
  API and admin   http://127.0.0.1:8000/            (admin: http://127.0.0.1:8000/admin/)
  admin login     admin / $ADMIN_PASSWORD
  client token    $(cat .stack/demo-token)   (product demo/shop, zone shop.demo.csrproxy.test)
  API docs        http://127.0.0.1:8000/api/docs/
  logs            $RUN/web.log $RUN/worker.log $RUN/sweeper.log
Stop everything with: make stop
MSG
