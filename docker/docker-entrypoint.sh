#!/bin/sh
# The image's entry point, as eclipse-mosquitto's: when started as root, give user mosquitto
# (uid 1883) the data and log volumes (a fresh host directory is often owned by root), then run
# the command; vigil drops to user mosquitto itself after binding its ports. Unlike the official
# script, /mosquitto/config is left alone: a mounted configuration keeps its owner on the host.
set -e
if [ "$(id -u)" = 0 ]; then
	chown -R mosquitto:mosquitto /mosquitto/data /mosquitto/log 2>/dev/null || true
fi
exec "$@"
