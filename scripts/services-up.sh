#!/usr/bin/env bash
# services-up.sh -- make sure PostgreSQL and RabbitMQ run on loopback, with the project's
# database role. Uses what is already running; otherwise installs (apt-get) and starts them,
# recording in .stack/started-services what it started so services-down.sh stops only that.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
mkdir -p .stack
STARTED=.stack/started-services

if ! port_busy 5432; then
  need_packages postgresql
  ver=$(ls /etc/postgresql | sort -V | tail -1)
  log "starting PostgreSQL $ver"
  pg_ctlcluster --skip-systemctl-redirect "$ver" main start
  echo "postgresql $ver" >> "$STARTED"
  wait_for 30 port_busy 5432 || die "PostgreSQL did not start"
fi
# The project's role and database (CREATEDB: pytest makes its own test database).
psql_admin() {
  if psql -h 127.0.0.1 -U postgres -tAc "select 1" >/dev/null 2>&1; then
    psql -q -h 127.0.0.1 -U postgres -v ON_ERROR_STOP=1 -tA "$@"
  else
    su postgres -c "psql -q -v ON_ERROR_STOP=1 -tA $(printf '%q ' "$@")"
  fi
}
if [ "$(psql_admin -c "select 1 from pg_roles where rolname='csrproxy'")" != 1 ]; then
  log "creating PostgreSQL role csrproxy"
  psql_admin -c "create role csrproxy login createdb password 'csrproxy'"
fi
if [ "$(psql_admin -c "select 1 from pg_database where datname='csrproxy'")" != 1 ]; then
  log "creating database csrproxy"
  psql_admin -c "create database csrproxy owner csrproxy"
fi
# PowerDNS keeps its zones in its own database (gpgsql backend).
if [ "$(psql_admin -c "select 1 from pg_database where datname='csrproxy_pdns'")" != 1 ]; then
  log "creating database csrproxy_pdns"
  psql_admin -c "create database csrproxy_pdns owner csrproxy"
  PGPASSWORD=csrproxy psql -h 127.0.0.1 -U csrproxy -d csrproxy_pdns -q -v ON_ERROR_STOP=1 \
    -f /usr/share/pdns-backend-pgsql/schema/schema.pgsql.sql >/dev/null
fi

if ! port_busy 5672; then
  need_packages rabbitmq-server
  log "starting RabbitMQ"
  rabbitmq-server -detached
  echo "rabbitmq" >> "$STARTED"
  wait_for 90 port_busy 5672 || die "RabbitMQ did not start"
fi
log "PostgreSQL and RabbitMQ are up"
