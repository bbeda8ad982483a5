#!/usr/bin/env bash
# stack-down.sh -- stop what stack-up.sh started (by recorded pid only, never by name).
set -uo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
stop_pidfile .stack/a2c/a2c/a2c.pid
stop_pidfile .stack/a2c/a2c-nodns/a2c.pid
stop_pidfile .stack/pebble/pebble.pid
stop_pidfile .stack/pdns/pdns.pid
if [ -s .stack/started-services ]; then
  while read -r svc ver; do
    case $svc in
      postgresql) pg_ctlcluster --skip-systemctl-redirect "$ver" main stop && log "stopped PostgreSQL" ;;
      rabbitmq) rabbitmqctl stop >/dev/null 2>&1 && log "stopped RabbitMQ" ;;
    esac
  done < .stack/started-services
  rm -f .stack/started-services
fi
exit 0
