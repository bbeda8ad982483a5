#!/usr/bin/env bash
# venv.sh -- create .venv (Python 3.11+) and install the pinned requirements.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
PYTHON=${PYTHON:-python3}
"$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' || die "Python 3.11+ needed ($PYTHON)"
if [ ! -x .venv/bin/python ]; then
  if ! "$PYTHON" -m venv .venv 2>/dev/null; then
    rm -rf .venv
    need_packages python3-venv
    "$PYTHON" -m venv .venv
  fi
fi
.venv/bin/pip install -q --disable-pip-version-check -r requirements/test.txt
touch .venv/.installed
