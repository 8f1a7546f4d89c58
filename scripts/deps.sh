#!/usr/bin/env bash
# Install the Debian 12 packages vigil needs to build (and, with --test, to
# run its tests), but only those that are missing. Safe to run repeatedly.
set -euo pipefail
build_pkgs=(gcc make pkg-config libssl-dev libwebsockets-dev uthash-dev libargon2-dev libsqlite3-dev libsystemd-dev libnats-dev)
test_pkgs=(check libsubunit-dev mosquitto mosquitto-clients python3 python3-paho-mqtt iproute2 iptables openssl faketime procps docker.io debootstrap docker-compose chromium nats-server)
pkgs=("${build_pkgs[@]}")
if [ "${1:-}" = "--test" ]; then pkgs+=("${test_pkgs[@]}"); fi
# tests/ops/test_man.sh renders scripts/man/ (man -l, groff)
if [ "${1:-}" = "--test" ]; then pkgs+=(man-db groff-base); fi
missing=()
for p in "${pkgs[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
echo "Installing Debian packages: ${missing[*]}"
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
