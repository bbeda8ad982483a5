#!/usr/bin/env bash
# Browser tests (tests/browser/): Debian's Chromium and playwright-core, nothing downloaded
# from anywhere but Debian's and npm's registries. playwright-core ships no browser and
# fetches none; the tests point it at /usr/bin/chromium. Idempotent: a second run changes
# nothing.
set -euo pipefail
cd "$(dirname "$0")/.."

PLAYWRIGHT_CORE_VERSION=1.65.2
BROWSER_DIR=.stack/browser

if ! command -v chromium >/dev/null; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >/dev/null
fi
if ! command -v npm >/dev/null; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null
fi

installed=""
if [ -f "$BROWSER_DIR/node_modules/playwright-core/package.json" ]; then
  installed=$(node -p "require('./$BROWSER_DIR/node_modules/playwright-core/package.json').version")
fi
if [ "$installed" != "$PLAYWRIGHT_CORE_VERSION" ]; then
  mkdir -p "$BROWSER_DIR"
  [ -f "$BROWSER_DIR/package.json" ] || echo '{"private": true}' >"$BROWSER_DIR/package.json"
  # PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD: belt and braces, playwright-core has no install hook.
  PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm install --prefix "$BROWSER_DIR" --no-audit --no-fund \
    --save-exact "playwright-core@$PLAYWRIGHT_CORE_VERSION" >/dev/null
fi
echo "browser: $(chromium --version 2>/dev/null | head -1), playwright-core $PLAYWRIGHT_CORE_VERSION"
