#!/usr/bin/env bash
# tests/interop/ws_browser/setup.sh - what the browser case of test_websockets.py needs:
# MQTT.js from package-lock.json into ./node_modules (npm ci) and Debian's chromium.
# Idempotent; safe to call from CI (as root for apt-get). Never fails the caller: the test
# prints "SKIP: ..." when something is still missing.
set -u
cd "$(dirname "$0")"
if ! command -v chromium >/dev/null 2>&1 && ! command -v chromium-browser >/dev/null 2>&1; then
	if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
		export DEBIAN_FRONTEND=noninteractive
		apt-get update -qq >/dev/null 2>&1 || true
		apt-get install -y -qq chromium >/dev/null 2>&1 || echo "ws_browser/setup.sh: could not install chromium" >&2
	else
		echo "ws_browser/setup.sh: chromium missing (apt-get install -y chromium as root)" >&2
	fi
fi
if [ ! -f node_modules/mqtt/dist/mqtt.min.js ]; then
	if command -v npm >/dev/null 2>&1; then
		npm ci --no-audit --no-fund >/dev/null 2>&1 || echo "ws_browser/setup.sh: npm ci failed" >&2
	else
		echo "ws_browser/setup.sh: npm missing" >&2
	fi
fi
exit 0
