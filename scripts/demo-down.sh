#!/usr/bin/env bash
# demo-down.sh -- stop the web service, worker and sweeper that demo.sh started.
set -uo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
for name in web worker sweeper; do stop_pidfile ".run/$name.pid"; done
exit 0
